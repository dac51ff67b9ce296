output "api_url" {
  description = "Base URL of the metrics API."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "queue_url" {
  description = "SQS queue producers send events to (tally send --queue-url)."
  value       = aws_sqs_queue.events.id
}

output "bucket" {
  description = "S3 bucket of events, quarantine and rollup state."
  value       = aws_s3_bucket.events.bucket
}

output "table" {
  description = "DynamoDB period table."
  value       = aws_dynamodb_table.periods.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms publish to."
  value       = aws_sns_topic.alarms.arn
}

output "athena_workgroup" {
  description = "Athena workgroup for SQL over raw events (database ${aws_glue_catalog_database.events.name})."
  value       = aws_athena_workgroup.events.name
}
