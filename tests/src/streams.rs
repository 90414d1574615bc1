//! The table's DynamoDB Stream as Lambda's event source mapping reads it (moto supports the
//! streams API): every record, oldest first, in the Lambda event's shape.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};

/// The table's stream records, oldest first, in the Lambda event's shape (what the event
/// source mapping hands the function).
pub async fn stream_records(
    ddb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
) -> Vec<EventRecord> {
    let arn = ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .expect("the table has a stream");
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut out = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let got = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            let records = got.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            out.extend(records.into_iter().map(as_lambda_record));
            iterator = got.next_shard_iterator;
        }
    }
    out
}

pub fn as_lambda_record(r: aws_sdk_dynamodbstreams::types::Record) -> EventRecord {
    let change = r.dynamodb.unwrap();
    let mut out = EventRecord::default();
    out.event_id = r.event_id.unwrap_or_default();
    out.event_name = r
        .event_name
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    out.event_source = r.event_source;
    out.aws_region = r.aws_region.unwrap_or_default();
    let at = change.approximate_creation_date_time.unwrap();
    out.change.approximate_creation_date_time =
        chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap();
    out.change.keys = change.keys.unwrap_or_default().into();
    out.change.new_image = change.new_image.unwrap_or_default().into();
    out.change.old_image = change.old_image.unwrap_or_default().into();
    out.change.sequence_number = change.sequence_number;
    out.change.size_bytes = change.size_bytes.unwrap_or_default();
    out
}

/// A stream batch as Lambda hands it to the function.
pub fn event(records: &[EventRecord]) -> Event {
    let mut e = Event::default();
    e.records = records.to_vec();
    e
}
