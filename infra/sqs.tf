resource "aws_sqs_queue" "events_dlq" {
  name                      = "${var.name}-events-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.tally.arn
}

resource "aws_sqs_queue" "events" {
  name                       = "${var.name}-events"
  visibility_timeout_seconds = 6 * var.ingest_timeout_seconds
  message_retention_seconds  = 345600
  kms_master_key_id          = aws_kms_key.tally.arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

resource "aws_sqs_queue_policy" "events" {
  count     = length(var.producer_principals) == 0 ? 0 : 1
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.producers.json
}

data "aws_iam_policy_document" "producers" {
  statement {
    sid       = "ProducersSend"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
    principals {
      type        = "AWS"
      identifiers = var.producer_principals
    }
  }
}

# Shard jobs of hours too large for one rollup invocation (see docs/scaling.md).
resource "aws_sqs_queue" "rollup_shards_dlq" {
  name                      = "${var.name}-rollup-shards-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.tally.arn
}

resource "aws_sqs_queue" "rollup_shards" {
  name                       = "${var.name}-rollup-shards"
  visibility_timeout_seconds = 6 * var.rollup_shard_timeout_seconds
  message_retention_seconds  = 86400
  kms_master_key_id          = aws_kms_key.tally.arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.rollup_shards_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "rollup_shards_dlq" {
  queue_url = aws_sqs_queue.rollup_shards_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.rollup_shards.arn]
  })
}
