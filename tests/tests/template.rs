//! infra/template.yaml as CloudFormation receives it (after the SAM transform): it must deploy
//! with its default parameters (no dependency cycle), and the settings operators rely on are
//! there: access logs and throttling on the HTTP API, reserved concurrency for connect, an
//! on-failure destination for the scheduler, X-Ray tracing on every function.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use entra_sync_tests::template::{self, function, resource, transformed};
use serde_json::{Value, json};

const FUNCTIONS: [&str; 4] = [
    "SchedulerFunction",
    "FetchFunction",
    "ReconcileFunction",
    "ConnectFunction",
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

#[test]
fn a_failed_scheduler_run_goes_to_an_on_failure_queue_with_an_alarm() {
    let config = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Lambda::EventInvokeConfig"
                && r["Properties"]["FunctionName"] == json!({"Ref": "SchedulerFunction"})
        })
        .expect("the scheduler has an EventInvokeConfig");
    let props = &config["Properties"];
    let queue = get_att(&props["DestinationConfig"]["OnFailure"]["Destination"]);
    assert_eq!(resource(queue)["Type"], "AWS::SQS::Queue");
    assert!(props["MaximumRetryAttempts"].as_u64().is_some());
    // The queue is watched.
    let alarmed = transformed()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .any(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] == queue
        });
    assert!(alarmed, "an alarm watches {queue}");
    // Lambda sends the failed event with the function's role.
    let sends = function("SchedulerFunction")
        .service_policies
        .iter()
        .flat_map(|d| d["Statement"].as_array().cloned().unwrap_or_default())
        .any(|s| {
            s["Action"] == "sqs:SendMessage"
                && s["Resource"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(":entra-sync-iamtest-scheduler-failures"))
        });
    assert!(sends, "the scheduler's role may send to {queue}");
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
