# Period rows: pk = {metric}#{grain}#{dims}, sk = period start; index by_set for group_by.
resource "aws_dynamodb_table" "periods" {
  name                        = "${var.name}-periods"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "N"
  }
  attribute {
    name = "set_pk"
    type = "S"
  }

  global_secondary_index {
    name            = "by_set"
    hash_key        = "set_pk"
    range_key       = "sk"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.tally.arn
  }
}
