//! infra/template.yaml as CloudFormation receives it (after the SAM transform): it must deploy
//! with its default parameters (no dependency cycle), and the settings operators rely on are
//! there: access logs and throttling on the HTTP API, reserved concurrency for connect, an
//! on-failure destination for the scheduler and the actions tick, the FIFO action queue with
//! its FIFO dead-letter queue and partial batch failures, the outbound webhook function's
//! schedule and wake-up queue, alarms, X-Ray tracing on every function.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use entra_sync_tests::template::{self, function, resource, transformed};
use serde_json::{Value, json};

const FUNCTIONS: [&str; 10] = [
    "SchedulerFunction",
    "FetchFunction",
    "ReconcileFunction",
    "ConnectFunction",
    "ActionsFunction",
    "WebhooksRouteFunction",
    "WebhooksQueueFunction",
    "ApiFunction",
    "PublisherFunction",
    "OutboundFunction",
];

fn get_att(v: &Value) -> &str {
    v["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("not a Fn::GetAtt: {v}"))
}

#[test]
fn the_transformed_template_has_no_dependency_cycle() {
    // CloudFormation refuses a template whose resources need each other (E3004 in cfn-lint);
    // the cycle only appears after the transform, when the API's routes name the function.
    let cycles = template::cycles();
    assert!(
        cycles.is_empty(),
        "dependency cycles between resources: {cycles:?}"
    );
}

#[test]
fn the_connect_function_takes_its_redirect_uri_from_the_parameter_alone() {
    // Empty by default: the function derives the callback URL from each request's domain.
    let env = &resource("ConnectFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(env["REDIRECT_URI"], json!({"Ref": "ConnectRedirectUri"}));
    assert_eq!(
        function("ConnectFunction").properties["Environment"]["Variables"]["REDIRECT_URI"],
        "",
        "the default deployment has no fixed redirect URI"
    );
}

#[test]
fn the_http_api_writes_json_access_logs_without_the_callback_query() {
    let stage = resource("ConnectApiApiGatewayDefaultStage");
    let logs = &stage["Properties"]["AccessLogSettings"];
    let group = get_att(&logs["DestinationArn"]);
    let group = resource(group);
    assert_eq!(group["Type"], "AWS::Logs::LogGroup");
    assert!(
        group["Properties"]["RetentionInDays"].is_object(),
        "the access log group keeps logs for LogRetentionDays: {group}"
    );
    let format = logs["Format"].as_str().expect("a log format");
    let line: Value = serde_json::from_str(format).expect("the format is one JSON object");
    for field in ["requestId", "routeKey", "status", "sourceIp"] {
        assert!(line.get(field).is_some(), "the access log has {field}");
    }
    // The callback's query string holds the authorization code and the consent state.
    for leak in ["$context.path", "querystring", "$request."] {
        assert!(!format.contains(leak), "the access log must not log {leak}");
    }
}

#[test]
fn every_api_route_is_throttled_and_the_public_callback_tighter() {
    let props = &resource("ConnectApiApiGatewayDefaultStage")["Properties"];
    let defaults = &props["DefaultRouteSettings"];
    assert!(
        defaults["ThrottlingRateLimit"].is_object() && defaults["ThrottlingBurstLimit"].is_object(),
        "every route has a rate and a burst limit: {defaults}"
    );
    let callback = &props["RouteSettings"]["GET /connect/callback"];
    let params = &transformed()["Parameters"];
    let default_of = |v: &Value| {
        let name = v["Ref"].as_str().expect("a parameter");
        params[name]["Default"].as_f64().expect("a number")
    };
    assert!(
        default_of(&callback["ThrottlingRateLimit"]) < default_of(&defaults["ThrottlingRateLimit"])
            && default_of(&callback["ThrottlingBurstLimit"])
                < default_of(&defaults["ThrottlingBurstLimit"]),
        "the unauthenticated callback gets the tighter limit: {callback}"
    );
    // A route setting names an existing route (the stage fails to deploy otherwise).
    let paths = &resource("ConnectApi")["Properties"]["Body"]["paths"];
    assert!(paths["/connect/callback"]["get"].is_object());
}

#[test]
fn the_connect_function_has_reserved_concurrency() {
    let reserved = &function("ConnectFunction").properties["ReservedConcurrentExecutions"];
    let n = reserved.as_str().and_then(|s| s.parse::<u32>().ok());
    assert!(
        n.is_some_and(|n| n > 0),
        "connect reserves concurrency by default: {reserved}"
    );
}

/// Whether some alarm watches `resource` (its first dimension names it).
fn alarmed(resource: &str, metric: &str) -> bool {
    transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .any(|r| {
            let p = &r["Properties"];
            r["Type"] == "AWS::CloudWatch::Alarm"
                && p["MetricName"] == metric
                && (p["Dimensions"][0]["Value"]["Fn::GetAtt"][0] == resource
                    || p["Dimensions"][0]["Value"]["Ref"] == resource)
        })
}

/// `queue` feeds `function_name` with partial batch failures, and its visibility timeout is at
/// least six times the function's timeout, so a message is not delivered again while an
/// invocation still works on it.
fn assert_queue_feeds(queue: &str, function_name: &str) {
    let visibility = resource(queue)["Properties"]["VisibilityTimeout"]
        .as_u64()
        .expect("a visibility timeout");
    let timeout = function(function_name).properties["Timeout"]
        .as_u64()
        .expect("a timeout");
    assert!(
        visibility >= 6 * timeout,
        "{queue}: visibility {visibility} < 6 x {timeout}"
    );
    let mapping = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Lambda::EventSourceMapping"
                && r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] == queue
        })
        .unwrap_or_else(|| panic!("{queue} feeds a function"));
    assert_eq!(
        mapping["Properties"]["FunctionName"],
        json!({"Ref": function_name})
    );
    assert_eq!(
        mapping["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
}

/// A failed asynchronous run of `function` goes to an on-failure queue of its own, watched by
/// an alarm, and the function's role may send to it (Lambda sends with that role).
fn assert_on_failure_queue(function_name: &str, queue_name_suffix: &str) {
    let config = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Lambda::EventInvokeConfig"
                && r["Properties"]["FunctionName"] == json!({"Ref": function_name})
        })
        .unwrap_or_else(|| panic!("{function_name} has an EventInvokeConfig"));
    let props = &config["Properties"];
    let queue = get_att(&props["DestinationConfig"]["OnFailure"]["Destination"]);
    assert_eq!(resource(queue)["Type"], "AWS::SQS::Queue");
    assert!(props["MaximumRetryAttempts"].as_u64().is_some());
    assert!(
        alarmed(queue, "ApproximateNumberOfMessagesVisible"),
        "an alarm watches {queue}"
    );
    let sends = function(function_name)
        .service_policies
        .iter()
        .flat_map(|d| d["Statement"].as_array().cloned().unwrap_or_default())
        .any(|s| {
            s["Action"] == "sqs:SendMessage"
                && s["Resource"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(queue_name_suffix))
        });
    assert!(sends, "{function_name}'s role may send to {queue}");
}

#[test]
fn a_failed_scheduler_run_goes_to_an_on_failure_queue_with_an_alarm() {
    assert_on_failure_queue(
        "SchedulerFunction",
        ":entra-sync-iamtest-scheduler-failures",
    );
}

#[test]
fn the_actions_tick_runs_every_five_minutes_with_retries_a_dead_letter_queue_and_an_on_failure_queue()
 {
    assert_scheduled("ActionsFunction", "rate(5 minutes)");
    assert_on_failure_queue("ActionsFunction", ":entra-sync-iamtest-actions-failures");
}

/// The schedule rule that invokes `function`: its expression, retries, and a dead-letter queue
/// EventBridge may send to, watched by an alarm.
fn assert_scheduled(function_name: &str, expression: &str) {
    let rule = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Events::Rule"
                && r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0] == function_name
        })
        .unwrap_or_else(|| panic!("a schedule invokes {function_name}"));
    assert_eq!(rule["Properties"]["ScheduleExpression"], expression);
    let target = &rule["Properties"]["Targets"][0];
    assert!(
        target["RetryPolicy"]["MaximumRetryAttempts"]
            .as_u64()
            .is_some()
    );
    let dlq = get_att(&target["DeadLetterConfig"]["Arn"]);
    assert_eq!(resource(dlq)["Type"], "AWS::SQS::Queue");
    assert!(
        alarmed(dlq, "ApproximateNumberOfMessagesVisible"),
        "an alarm watches {dlq}"
    );
    let allowed = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .any(|r| {
            r["Type"] == "AWS::SQS::QueuePolicy"
                && r["Properties"]["Queues"][0]["Ref"] == dlq
                && r["Properties"]["PolicyDocument"]["Statement"][0]["Principal"]["Service"]
                    == "events.amazonaws.com"
        });
    assert!(allowed, "EventBridge may send to {dlq}");
}

#[test]
fn outbound_webhooks_are_sent_every_minute_and_on_the_publishers_wake_up_queue() {
    assert_scheduled("OutboundFunction", "rate(1 minute)");
    assert_on_failure_queue("OutboundFunction", ":entra-sync-iamtest-outbound-failures");
    let queue = &resource("OutboundQueue")["Properties"];
    let dlq = get_att(&queue["RedrivePolicy"]["deadLetterTargetArn"]);
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() > 1);
    assert!(alarmed(dlq, "ApproximateNumberOfMessagesVisible"));
    assert_queue_feeds("OutboundQueue", "OutboundFunction");
    assert!(alarmed("OutboundFunction", "Errors"));
    // The publisher sends the wake-ups; the due index the function reads is on the table.
    let env = &resource("PublisherFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(env["OUTBOUND_QUEUE_URL"], json!({"Ref": "OutboundQueue"}));
    let indexes = &resource("Table")["Properties"]["GlobalSecondaryIndexes"];
    assert!(
        indexes
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["IndexName"] == "gsi2"),
        "{indexes}"
    );
}

#[test]
fn the_action_queue_is_fifo_with_a_fifo_dead_letter_queue_and_partial_batch_failures() {
    let queue = &resource("ActionQueue")["Properties"];
    assert_eq!(
        queue["FifoQueue"], true,
        "one user's actions keep their order"
    );
    let dlq = get_att(&queue["RedrivePolicy"]["deadLetterTargetArn"]);
    assert_eq!(
        resource(dlq)["Properties"]["FifoQueue"],
        true,
        "a FIFO queue's dead-letter queue is FIFO"
    );
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() > 1);
    assert_queue_feeds("ActionQueue", "ActionsFunction");
    // The alarms an operator relies on: dead letters, and the function failing.
    assert!(alarmed(dlq, "ApproximateNumberOfMessagesVisible"));
    assert!(alarmed("ActionsFunction", "Errors"));
    // The function sends to the queue it consumes (approvals, retries, workflow steps).
    let env = &resource("ActionsFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(env["ACTION_QUEUE_URL"], json!({"Ref": "ActionQueue"}));
}

#[test]
fn every_function_traces_with_xray() {
    for name in FUNCTIONS {
        let f = function(name);
        assert_eq!(
            f.properties["TracingConfig"]["Mode"], "Active",
            "{name} traces"
        );
        assert!(
            f.managed
                .iter()
                .any(|m| m.ends_with(":policy/AWSXrayWriteOnlyAccess")),
            "{name} may write traces: {:?}",
            f.managed
        );
    }
}

#[test]
fn the_hr_webhook_route_is_public_throttled_and_alarmed_on_signature_failures() {
    let route =
        &resource("ConnectApi")["Properties"]["Body"]["paths"]["/hooks/{account}/{source}"]["post"];
    assert_eq!(
        route["security"],
        json!([{"NONE": []}]),
        "the signature is the proof, not IAM"
    );
    assert!(
        route["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .contains("${WebhooksRouteFunction.Arn}")
    );
    let stage = &resource("ConnectApiApiGatewayDefaultStage")["Properties"];
    let route = &stage["RouteSettings"]["POST /hooks/{account}/{source}"];
    assert_eq!(
        route["ThrottlingRateLimit"],
        json!({"Ref": "HooksRateLimit"})
    );
    assert_eq!(
        route["ThrottlingBurstLimit"],
        json!({"Ref": "HooksBurstLimit"})
    );
    // Refused signatures are counted from the route's log and alarmed.
    let filter = &resource("WebhookSignatureFailuresMetric")["Properties"];
    assert_eq!(
        filter["LogGroupName"],
        json!({"Ref": "WebhooksRouteLogGroup"})
    );
    assert!(
        filter["FilterPattern"]
            .as_str()
            .unwrap()
            .contains("invalid_signature")
    );
    let metric = filter["MetricTransformations"][0]["MetricName"].clone();
    let alarm = &resource("WebhookSignatureFailuresAlarm")["Properties"];
    assert_eq!(alarm["MetricName"], metric);
    assert_eq!(
        alarm["Namespace"],
        filter["MetricTransformations"][0]["MetricNamespace"]
    );
}

#[test]
fn the_delivery_queue_is_fifo_with_a_fifo_dead_letter_queue_and_partial_batch_failures() {
    let queue = &resource("DeliveryQueue")["Properties"];
    assert_eq!(
        queue["FifoQueue"], true,
        "one endpoint's deliveries keep their order"
    );
    let dlq = get_att(&queue["RedrivePolicy"]["deadLetterTargetArn"]);
    assert_eq!(resource(dlq)["Properties"]["FifoQueue"], true);
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() > 1);
    assert_queue_feeds("DeliveryQueue", "WebhooksQueueFunction");
    assert!(alarmed(dlq, "ApproximateNumberOfMessagesVisible"));
    assert!(alarmed("WebhooksQueueFunction", "Errors"));
    let env = &resource("WebhooksRouteFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(env["DELIVERY_QUEUE_URL"], json!({"Ref": "DeliveryQueue"}));
}

#[test]
fn the_publisher_reads_the_table_stream_with_retries_bisection_partial_failures_and_an_on_failure_queue()
 {
    let table = &resource("Table")["Properties"];
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES",
        "the publisher needs every write's item before and after"
    );
    let mapping = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Lambda::EventSourceMapping"
                && r["Properties"]["FunctionName"] == json!({"Ref": "PublisherFunction"})
        })
        .expect("the publisher has an event source mapping");
    let p = &mapping["Properties"];
    assert_eq!(get_att(&p["EventSourceArn"]), "Table");
    assert_eq!(p["EventSourceArn"]["Fn::GetAtt"][1], "StreamArn");
    assert_eq!(p["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(p["MaximumRetryAttempts"].as_u64().is_some_and(|n| n > 0));
    assert!(
        p["MaximumRecordAgeInSeconds"]
            .as_u64()
            .is_some_and(|s| s <= 86_400),
        "a record older than the stream's retention cannot be retried"
    );
    let queue = get_att(&p["DestinationConfig"]["OnFailure"]["Destination"]);
    assert_eq!(resource(queue)["Type"], "AWS::SQS::Queue");
    assert!(
        alarmed(queue, "ApproximateNumberOfMessagesVisible"),
        "an alarm watches {queue}"
    );
    let f = function("PublisherFunction");
    let sends = f
        .service_policies
        .iter()
        .flat_map(|d| d["Statement"].as_array().cloned().unwrap_or_default())
        .any(|s| {
            s["Action"] == "sqs:SendMessage"
                && s["Resource"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("-publisher-failures"))
        });
    assert!(sends, "the publisher's role may send to {queue}");
    assert!(
        f.managed
            .iter()
            .any(|m| m.ends_with("/AWSLambdaDynamoDBExecutionRole")),
        "the mapping may read the stream with the publisher's role: {:?}",
        f.managed
    );
}

/// The change events' schema is in the template's schema registry, listing exactly the
/// catalog's types (the files under events/schemas/), with the envelope every event carries;
/// and a sample rule on the bus (disabled) may deliver to its queue.
#[test]
fn the_event_schema_lists_the_catalog_and_a_sample_rule_delivers_to_its_queue() {
    let schema = resource("ChangeEventSchema");
    assert_eq!(schema["Type"], "AWS::EventSchemas::Schema");
    assert_eq!(
        schema["Properties"]["RegistryName"]["Fn::GetAtt"][0],
        "EventSchemaRegistry"
    );
    assert_eq!(schema["Properties"]["Type"], "JSONSchemaDraft4");
    let content: Value =
        serde_json::from_str(schema["Properties"]["Content"].as_str().unwrap()).unwrap();
    let mut catalog: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/schemas"),
    )
    .unwrap()
    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    .filter_map(|n| n.strip_suffix(".v1.json").map(str::to_owned))
    .collect();
    catalog.sort();
    assert!(catalog.len() > 20, "the catalog was read: {catalog:?}");
    let listed = |v: &Value| -> Vec<String> {
        let mut t: Vec<String> = v["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(listed(&content["properties"]["detail-type"]), catalog);
    let detail = &content["properties"]["detail"];
    assert_eq!(listed(&detail["properties"]["type"]), catalog);
    assert_eq!(
        content["properties"]["source"]["enum"],
        json!(["entra-sync"])
    );
    assert_eq!(
        detail["required"],
        json!([
            "id",
            "type",
            "version",
            "tenant_id",
            "account_id",
            "object_id",
            "sequence",
            "occurred_at",
            "data"
        ])
    );

    let rule = resource("SampleEventsRule");
    assert_eq!(rule["Properties"]["EventBusName"]["Ref"], "EventBus");
    assert_eq!(rule["Properties"]["State"], "DISABLED");
    assert_eq!(
        rule["Properties"]["EventPattern"]["source"],
        json!(["entra-sync"])
    );
    for t in rule["Properties"]["EventPattern"]["detail-type"]
        .as_array()
        .unwrap()
    {
        assert!(
            catalog.iter().any(|c| c == t.as_str().unwrap()),
            "the sample rule matches a type of the catalog: {t}"
        );
    }
    let queue = get_att(&rule["Properties"]["Targets"][0]["Arn"]);
    assert_eq!(resource(queue)["Type"], "AWS::SQS::Queue");
    let allowed = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .any(|r| {
            let st = &r["Properties"]["PolicyDocument"]["Statement"][0];
            r["Type"] == "AWS::SQS::QueuePolicy"
                && r["Properties"]["Queues"][0]["Ref"] == queue
                && st["Principal"]["Service"] == "events.amazonaws.com"
                && st["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
                    == "SampleEventsRule"
        });
    assert!(allowed, "the sample rule may send to {queue}");
}
