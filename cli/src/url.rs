//! Operator commands through the evaluator's `AWS_IAM` function URLs (infra/template.yaml:
//! `EvaluatorReadUrl` on alias `read`, `EvaluatorOperateUrl` on alias `operate`), signed with
//! SigV4 for service `lambda` with the caller's normal credentials (aws-config's provider chain).
//!
//! Lambda verifies the signature and evaluates `lambda:InvokeFunctionUrl` (and
//! `lambda:InvokeFunction`) against the caller's policies before the function runs, then hands
//! the function the caller's principal in `requestContext.authorizer.iam` (Lambda Developer
//! Guide, "Control access to Lambda function URLs" and "Invoking Lambda function URLs"). A
//! refusal by IAM is `403` with `{"Message": ...}`; a refusal by the evaluator's door is its
//! `url_response` (functions/alarm-evaluator/src/door.rs): `401`/`403`/`400` with
//! `{"error": ...}`, and a verdict is `200` with the handler's answer as the body.

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use failover_policy::signal::{OperatorAction, OperatorCommand};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::CliError;

/// The signing name of Lambda (function URLs are signed as `lambda`).
pub const SERVICE: &str = "lambda";

/// How long to wait for a URL's answer: past the evaluator's `Timeout: 60` (infra/template.yaml),
/// so its own answer or Lambda's timeout error arrives first.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(90);

/// The two URLs, from the stack's outputs (`OperatorReadUrl`, `OperatorActionsUrl`) or flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    pub read: String,
    pub operate: String,
}

impl Urls {
    /// `status` is read-only and goes to the read URL (the `OperatorReadOnly` policy's); every
    /// other command changes a site and goes to the operate URL (`OperatorActions`).
    pub fn for_command(&self, cmd: &OperatorCommand) -> &str {
        match cmd.command {
            OperatorAction::Status => &self.read,
            _ => &self.operate,
        }
    }
}

/// The request, signed: `POST url` with the JSON command, `content-type`, `host` and
/// `x-amz-date` in the signature (and `x-amz-security-token` for temporary credentials).
pub fn signed_request(
    url: &str,
    region: &str,
    creds: &Credentials,
    body: Vec<u8>,
    time: SystemTime,
) -> Result<http::Request<Vec<u8>>, CliError> {
    let bad = |e: String| CliError::Usage(format!("function URL `{url}`: {e}"));
    let uri: http::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    if uri.host().is_none() || !matches!(uri.scheme_str(), Some("https" | "http")) {
        return Err(bad("not an http(s) URL with a host".into()));
    }
    let mut req = http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| bad(e.to_string()))?;
    let identity: Identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| bad(e.to_string()))?
        .into();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(req.body()),
    )
    .map_err(|e| bad(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| bad(format!("signing: {e}")))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut req);
    Ok(req)
}

/// The region to sign for: a function URL's own (`<id>.lambda-url.<region>.on.aws`, Lambda
/// Developer Guide, "Creating and managing Lambda function URLs"), which a signature scoped to
/// any other region fails; for any other host (a local front such as `127.0.0.1`) the SDK
/// config's region.
pub fn signing_region(url: &str, configured: Option<&str>) -> Result<String, CliError> {
    let host = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_ascii_lowercase));
    let from_host = host.as_deref().and_then(|h| {
        let rest = h.strip_suffix(".on.aws")?;
        let (_, region) = rest.split_once(".lambda-url.")?;
        (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
    });
    from_host
        .or_else(|| configured.map(str::to_string))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no region to sign for `{url}`: not a *.lambda-url.<region>.on.aws URL; \
                 --region or AWS_REGION"
            ))
        })
}

/// Error types that say the request's signature or credentials are at fault, not that IAM or
/// the door denied a valid caller: the operator must fix their credentials (or clock), so it is
/// a failure to reach the URL (exit 3), not a decision.
const SIGNATURE_ERRORS: &[&str] = &[
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

/// What a function URL's answer means: `200` → the evaluator's answer; `401`/`403` → refused
/// (by IAM or by the evaluator's door), with the body's reason, unless its error type (the
/// `x-amzn-ErrorType` header, or the body's `Type`/`__type`) is a signature or credential
/// problem, which failed; `400` → the evaluator refused the input; anything else → failed.
pub fn interpret(
    url: &str,
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
) -> Result<Value, CliError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason = v["error"]
        .as_str()
        .or(v["Message"].as_str())
        .or(v["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    // `x-amzn-ErrorType` may carry `:<doc url>` after the type.
    let kind = error_type
        .or(v["Type"].as_str())
        .or(v["__type"].as_str())
        .map(|t| {
            t.split(':')
                .next()
                .unwrap_or(t)
                .rsplit('#')
                .next()
                .unwrap_or(t)
        });
    match status {
        200 => Ok(v),
        401 | 403 if kind.is_some_and(|k| SIGNATURE_ERRORS.contains(&k)) => Err(CliError::Aws {
            what: format!("POST {url} (signed with these credentials)"),
            error: format!("HTTP {status} {}: {reason}", kind.unwrap_or_default()),
        }),
        401 | 403 => Err(CliError::Refused(format!(
            "refused by {url} (HTTP {status}): {reason}"
        ))),
        400 => Err(CliError::Refused(format!("evaluator BadInput: {reason}"))),
        _ => Err(CliError::Aws {
            what: format!("POST {url}"),
            error: format!("HTTP {status}: {reason}"),
        }),
    }
}

/// Signs the command with the caller's credentials and POSTs it to its URL.
pub async fn send(
    sdk: &aws_config::SdkConfig,
    urls: &Urls,
    cmd: &OperatorCommand,
) -> Result<Value, CliError> {
    let url = urls.for_command(cmd);
    let no_creds = |e: String| CliError::Aws {
        what: format!("credentials to sign for {url}"),
        error: e,
    };
    let creds = sdk
        .credentials_provider()
        .ok_or_else(|| no_creds("no credentials provider".into()))?
        .provide_credentials()
        .await
        .map_err(|e| no_creds(aws_sdk_lambda::error::DisplayErrorContext(e).to_string()))?;
    let region = signing_region(url, sdk.region().map(|r| r.as_ref()))?;
    let body = serde_json::to_vec(cmd).expect("a command serialises");
    let req = signed_request(url, &region, &creds, body, SystemTime::now())?;
    let failed = |e: String| CliError::Aws {
        what: format!("POST {url}"),
        error: e,
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| failed(format!("TLS roots: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<bytes::Bytes>>(https);
    let exchange = async {
        let resp = client
            .request(req.map(|b| Full::new(bytes::Bytes::from(b))))
            .await
            .map_err(|e| failed(crate::aws_error("", e).to_string()))?;
        let status = resp.status().as_u16();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        Ok::<_, CliError>((status, error_type, body))
    };
    let (status, error_type, body) = tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .map_err(|_| {
            failed(format!(
                "no answer within {} s (the evaluator's own timeout is 60 s)",
                ANSWER_WITHIN.as_secs()
            ))
        })??;
    interpret(url, status, error_type.as_deref(), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "secret", None, None, "test")
    }

    fn cmd(v: Value) -> OperatorCommand {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn status_goes_to_the_read_url_and_every_other_command_to_operate() {
        let urls = Urls {
            read: "https://r.lambda-url.us-east-1.on.aws/".into(),
            operate: "https://o.lambda-url.us-east-1.on.aws/".into(),
        };
        assert_eq!(
            urls.for_command(&cmd(json!({"command": "status", "site": "orders"}))),
            urls.read
        );
        for c in ["pause", "resume", "failover", "abort"] {
            assert_eq!(
                urls.for_command(&cmd(json!({"command": c, "site": "orders"}))),
                urls.operate,
                "{c}"
            );
        }
    }

    #[test]
    fn the_request_is_signed_for_lambda_in_the_region_over_host_date_and_type() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_155_200);
        let req = signed_request(
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "eu-west-1",
            &creds(),
            br#"{"command":"status"}"#.to_vec(),
            t,
        )
        .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/eu-west-1/lambda/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-date"], "20261201T200000Z");
        // A different body is a different signature: the payload is signed.
        let other = signed_request(
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "eu-west-1",
            &creds(),
            br#"{"command":"pause"}"#.to_vec(),
            t,
        )
        .unwrap();
        assert_ne!(
            other.headers()["authorization"],
            req.headers()["authorization"]
        );
    }

    #[test]
    fn a_url_that_is_not_one_is_a_usage_error() {
        for u in ["", "abc.lambda-url.on.aws", "ftp://x/"] {
            let e =
                signed_request(u, "us-east-1", &creds(), vec![], SystemTime::now()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{u}: {e}");
        }
    }

    #[test]
    fn refusals_by_iam_or_the_door_are_refused_with_the_reason_and_others_fail() {
        let u = "https://o/";
        let v = interpret(u, 200, None, br#"{"verdicts":[]}"#).unwrap();
        assert_eq!(v["verdicts"], json!([]));
        let iam = interpret(u, 403, None, br#"{"Message":"Forbidden"}"#).unwrap_err();
        assert!(
            matches!(&iam, CliError::Refused(m) if m.contains("Forbidden") && m.contains("403"))
        );
        let door =
            interpret(u, 403, None, br#"{"error":"not permitted at door read"}"#).unwrap_err();
        assert!(matches!(&door, CliError::Refused(m) if m.contains("door read")));
        assert_eq!(interpret(u, 401, None, b"{}").unwrap_err().exit_code(), 1);
        assert_eq!(
            interpret(u, 400, None, br#"{"error":"reason"}"#)
                .unwrap_err()
                .exit_code(),
            1
        );
        let failed = interpret(u, 502, None, b"Internal Server Error").unwrap_err();
        assert_eq!(failed.exit_code(), 3, "{failed}");
    }

    #[test]
    fn a_signature_or_credential_403_is_a_failure_with_its_reason_not_a_refusal() {
        let u = "https://o/";
        let bad = br#"{"Message":"The request signature we calculated does not match"}"#;
        for (header, body) in [
            (Some("InvalidSignatureException"), &bad[..]),
            (
                Some("UnrecognizedClientException:http://internal.amazon.com/"),
                &bad[..],
            ),
            (None, &br#"{"Message":"expired","Type":"ExpiredToken"}"#[..]),
        ] {
            let e = interpret(u, 403, header, body).unwrap_err();
            assert_eq!(e.exit_code(), 3, "{header:?}: {e}");
            let shown = e.to_string();
            assert!(
                shown.contains("does not match") || shown.contains("expired"),
                "{shown}"
            );
        }
        // IAM's own denial of a correctly signed caller stays a refusal.
        let denied = interpret(
            u,
            403,
            Some("AccessDeniedException"),
            br#"{"Message":"Forbidden"}"#,
        );
        assert_eq!(denied.unwrap_err().exit_code(), 1);
    }

    #[test]
    fn the_signing_region_is_the_urls_own_and_the_configs_for_other_hosts() {
        let r = |u, c| signing_region(u, c).unwrap();
        assert_eq!(
            r(
                "https://abc123.lambda-url.eu-west-1.on.aws/",
                Some("us-east-1")
            ),
            "eu-west-1"
        );
        assert_eq!(
            r("https://ABC.LAMBDA-URL.ap-southeast-2.ON.AWS/x", None),
            "ap-southeast-2"
        );
        assert_eq!(r("http://127.0.0.1:8080/", Some("us-west-2")), "us-west-2");
        assert_eq!(
            signing_region("http://127.0.0.1:8080/", None)
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
