//! Which deployment the CLI talks to, resolved once: the SDK configuration (the caller's normal
//! credentials and region, or an emulator's endpoint), the ledger table, the evaluator, and the
//! evaluator's two `AWS_IAM` function URLs that operator commands are signed to.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::args::TargetArgs;
use crate::CliError;

pub struct Target {
    pub sdk: SdkConfig,
    pub ledger_table: String,
    pub evaluator: String,
    /// Where commands are sent, signed; `None` only when no stack and no URLs were named (the
    /// local world, whose evaluator accepts direct invoke).
    pub urls: Option<crate::url::Urls>,
    lambda_endpoint: Option<String>,
}

/// The stack's outputs the CLI reads (infra/template.yaml `Outputs`), with one
/// `cloudformation:DescribeStacks` — the one CloudFormation action the operator policies grant.
const LEDGER_OUTPUT: &str = "LedgerTableName";
const EVALUATOR_OUTPUT: &str = "AlarmEvaluatorFunctionName";
const READ_URL_OUTPUT: &str = "OperatorReadUrl";
const OPERATE_URL_OUTPUT: &str = "OperatorActionsUrl";

pub async fn sdk_config(args: &TargetArgs) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = &args.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &args.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// The stack's outputs, by key (CloudFormation `DescribeStacks`).
async fn stack_outputs(sdk: &SdkConfig, stack: &str) -> Result<Outputs, CliError> {
    let out = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| CliError::Aws {
            what: format!("stack {stack}: outputs"),
            error: aws_sdk_cloudformation::error::DisplayErrorContext(e).to_string(),
        })?;
    let map = out
        .stacks()
        .first()
        .map(|s| s.outputs())
        .unwrap_or_default()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect();
    Ok(Outputs {
        stack: stack.to_string(),
        map,
    })
}

struct Outputs {
    stack: String,
    map: std::collections::BTreeMap<String, String>,
}

impl Outputs {
    fn get(&self, key: &str) -> Result<String, CliError> {
        self.map.get(key).cloned().ok_or_else(|| CliError::Aws {
            what: format!("stack {}: output {key}", self.stack),
            error: "missing (a stack from before this version of the template? redeploy it)".into(),
        })
    }
}

impl Target {
    pub async fn resolve(args: &TargetArgs) -> Result<Self, CliError> {
        let sdk = sdk_config(args).await;
        let named_urls = match (&args.read_url, &args.operate_url) {
            (Some(read), Some(operate)) => Some(crate::url::Urls {
                read: read.clone(),
                operate: operate.clone(),
            }),
            _ => None,
        };
        let complete = args.ledger_table.is_some() && args.evaluator.is_some();
        let outputs = match &args.stack {
            Some(stack) if !complete || named_urls.is_none() => {
                Some(stack_outputs(&sdk, stack).await?)
            }
            Some(_) => None,
            None if complete => None,
            None => {
                return Err(CliError::Usage(
                    "name the deployment: --stack NAME (with --region), or --ledger-table and --evaluator".into(),
                ))
            }
        };
        let pick = |given: &Option<String>, key: &str| match (given, &outputs) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(o)) => o.get(key),
            (None, None) => unreachable!("outputs are read whenever a name is missing"),
        };
        let ledger_table = pick(&args.ledger_table, LEDGER_OUTPUT)?;
        let evaluator = pick(&args.evaluator, EVALUATOR_OUTPUT)?;
        // A stack's commands always go to its URLs (its evaluator refuses mutating commands by
        // direct invoke by default); without a stack and without URLs, the local world.
        let urls = match (named_urls, &outputs) {
            (Some(u), _) => Some(u),
            (None, Some(o)) => Some(crate::url::Urls {
                read: o.get(READ_URL_OUTPUT)?,
                operate: o.get(OPERATE_URL_OUTPUT)?,
            }),
            (None, None) => None,
        };
        Ok(Self {
            sdk,
            ledger_table,
            evaluator,
            urls,
            lambda_endpoint: args.lambda_endpoint_url.clone(),
        })
    }

    /// Where this command goes: its function URL, or the evaluator by direct invoke.
    pub fn destination(&self, cmd: &failover_policy::signal::OperatorCommand) -> String {
        match &self.urls {
            Some(u) => u.for_command(cmd).to_string(),
            None => self.evaluator.clone(),
        }
    }

    pub fn ledger(&self) -> crate::ledger::LedgerReader {
        crate::ledger::LedgerReader {
            client: aws_sdk_dynamodb::Client::new(&self.sdk),
            table: self.ledger_table.clone(),
        }
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        let mut conf = aws_sdk_lambda::config::Builder::from(&self.sdk);
        if let Some(e) = &self.lambda_endpoint {
            conf = conf.endpoint_url(e);
        }
        aws_sdk_lambda::Client::from_conf(conf.build())
    }
}
