region              = "us-east-1"
name                = "tally"
reporting_tz        = "Asia/Seoul"
jwt_issuer          = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
jwt_audience        = ["example-admin-client-id"]
cors_origin         = "https://admin.example.com"
producer_principals = ["arn:aws:iam::123456789012:role/user-service", "arn:aws:iam::123456789012:role/shop-service"]
alarm_email         = "oncall@example.com"
