//! Which deployment the CLI talks to, resolved once: the SDK configuration (the caller's normal
//! credentials and region, or an emulator's endpoint), the ledger table and the evaluator.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::args::TargetArgs;
use crate::CliError;

pub struct Target {
    pub sdk: SdkConfig,
    pub ledger_table: String,
    pub evaluator: String,
    lambda_endpoint: Option<String>,
}

/// The stack's logical ids (infra/template.yaml).
const LEDGER_LOGICAL_ID: &str = "LedgerTable";
const EVALUATOR_LOGICAL_ID: &str = "AlarmEvaluatorFunction";

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

impl Target {
    pub async fn resolve(args: &TargetArgs) -> Result<Self, CliError> {
        let sdk = sdk_config(args).await;
        let (mut table, mut evaluator) = (args.ledger_table.clone(), args.evaluator.clone());
        if table.is_none() || evaluator.is_none() {
            let Some(stack) = &args.stack else {
                return Err(CliError::Usage(
                    "name the deployment: --stack NAME (with --region), or --ledger-table and --evaluator".into(),
                ));
            };
            let cfn = aws_sdk_cloudformation::Client::new(&sdk);
            let physical = |logical: &'static str| {
                let cfn = cfn.clone();
                async move {
                    let out = cfn
                        .describe_stack_resource()
                        .stack_name(stack)
                        .logical_resource_id(logical)
                        .send()
                        .await
                        .map_err(|e| CliError::Aws {
                            what: format!("stack {stack}: resource {logical}"),
                            error: aws_sdk_cloudformation::error::DisplayErrorContext(e)
                                .to_string(),
                        })?;
                    out.stack_resource_detail()
                        .and_then(|d| d.physical_resource_id())
                        .map(str::to_string)
                        .ok_or_else(|| CliError::Aws {
                            what: format!("stack {stack}: resource {logical}"),
                            error: "no physical id (not created yet?)".into(),
                        })
                }
            };
            if table.is_none() {
                table = Some(physical(LEDGER_LOGICAL_ID).await?);
            }
            if evaluator.is_none() {
                evaluator = Some(physical(EVALUATOR_LOGICAL_ID).await?);
            }
        }
        Ok(Self {
            sdk,
            ledger_table: table.unwrap_or_default(),
            evaluator: evaluator.unwrap_or_default(),
            lambda_endpoint: args.lambda_endpoint_url.clone(),
        })
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
