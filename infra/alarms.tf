# Alarms against silent data loss and a stalled pipeline, to one SNS topic.
resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.tally.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Counts PUTs under quarantine/ (S3 request metrics), so quarantine writes can alarm.
resource "aws_s3_bucket_metric" "quarantine" {
  bucket = aws_s3_bucket.events.id
  name   = "quarantine"
  filter {
    prefix = "quarantine/"
  }
}

locals {
  alarms = {
    events-dlq-not-empty = {
      description = "Events reached the dead-letter queue: they were delivered ${var.max_receive_count} times without being written."
      namespace   = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", statistic = "Maximum", threshold = 0
      dimensions  = { QueueName = aws_sqs_queue.events_dlq.name }
      period = 300, periods = 1
    }
    rollup-shards-dlq-not-empty = {
      description = "Shard jobs of large hours failed ${var.max_receive_count} times: those hours stay touched and wait (see the rollup_shards log group)."
      namespace   = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", statistic = "Maximum", threshold = 0
      dimensions  = { QueueName = aws_sqs_queue.rollup_shards_dlq.name }
      period = 300, periods = 1
    }
    scheduler-dlq-not-empty = {
      description = "A scheduled rollup or compaction could not be delivered to the function."
      namespace   = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", statistic = "Maximum", threshold = 0
      dimensions  = { QueueName = aws_sqs_queue.scheduler_dlq.name }
      period = 300, periods = 1
    }
    oldest-event-too-old = {
      description = "The oldest queued event waits longer than ${var.oldest_message_alarm_seconds} s: ingest is not keeping up."
      namespace   = "AWS/SQS", metric = "ApproximateAgeOfOldestMessage", statistic = "Maximum", threshold = var.oldest_message_alarm_seconds
      dimensions  = { QueueName = aws_sqs_queue.events.name }
      period = 300, periods = 1
    }
    quarantine-writes = {
      description = "Malformed events were quarantined (see quarantine/ in the bucket)."
      namespace   = "AWS/S3", metric = "PutRequests", statistic = "Sum", threshold = 0
      dimensions  = { BucketName = aws_s3_bucket.events.bucket, FilterId = aws_s3_bucket_metric.quarantine.name }
      period = 300, periods = 1
    }
    rollup-errors = {
      description = "The rollup function failed."
      namespace   = "AWS/Lambda", metric = "Errors", statistic = "Sum", threshold = 0
      dimensions  = { FunctionName = aws_lambda_function.function["rollup"].function_name }
      period = 300, periods = 1
    }
    rollup-falling-behind = {
      description = "Touched hours were still waiting after ${var.rollup_backlog_alarm_runs} rollup runs in a row: rollups are not keeping up with late or heavy hours."
      namespace   = "tally", metric = "TouchedHoursWaiting", statistic = "Minimum", threshold = 0
      dimensions  = { Function = "rollup" }
      # One period per scheduled run, so each data point is one run's report.
      period = var.rollup_every_minutes * 60, periods = var.rollup_backlog_alarm_runs
    }
    api-5xx = {
      description = "The API answered with server errors."
      namespace   = "AWS/ApiGateway", metric = "5xx", statistic = "Sum", threshold = 0
      dimensions  = { ApiId = aws_apigatewayv2_api.api.id, Stage = aws_apigatewayv2_stage.default.name }
      period = 300, periods = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "alarm" {
  for_each            = local.alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  dimensions          = each.value.dimensions
  period              = each.value.period
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
