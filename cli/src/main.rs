//! `rds-failover`: setup only (parse, resolve the deployment, run, exit with the outcome's code).

use std::io::{BufRead, IsTerminal, Write};

use clap::Parser;
use rds_failover_cli::args::{Cli, Cmd};
use rds_failover_cli::command::OpCommand;
use rds_failover_cli::target::{sdk_config, Target};
use rds_failover_cli::{history, invoke, status, validate, whatif, CliError};
use serde_json::Value;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rds-failover: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

async fn run(cli: Cli) -> Result<i32, CliError> {
    match &cli.cmd {
        Cmd::Validate { config, offline } => {
            let (cfg, mut f) = validate::offline(config)?;
            if !offline {
                let sdk = sdk_config(&cli.target).await;
                validate::against_aws(&sdk, &cfg, &mut f).await;
            }
            if cli.json {
                print_json(&f);
            } else {
                print!("{}", validate::render(&f));
            }
            return Ok(if f.errors.is_empty() { 0 } else { 1 });
        }
        Cmd::Status { site, no_live } => {
            let target = Target::resolve(&cli.target).await?;
            let s = status::gather(&target, site.as_deref(), !no_live).await?;
            if cli.json {
                print_json(&s);
            } else {
                print!("{}", status::render(&s));
            }
        }
        Cmd::History { site, limit } => {
            let target = Target::resolve(&cli.target).await?;
            let trail = history::read(&target, site, *limit).await?;
            if cli.json {
                print_json(&trail);
            } else {
                print!("{}", history::render(site, &trail));
            }
        }
        Cmd::WhatIf {
            site,
            config,
            limit,
        } => {
            let (cfg, _) = validate::offline(config)?;
            if cfg.site(site).is_none() {
                return Err(CliError::Usage(format!(
                    "{}: names no site `{site}`",
                    config.display()
                )));
            }
            let target = Target::resolve(&cli.target).await?;
            let trail = history::read(&target, site, *limit).await?;
            let report = whatif::run(&cfg, site, trail);
            if cli.json {
                print_json(&report);
            } else {
                print!("{}", whatif::render(&report, &cfg.version()));
            }
        }
        Cmd::Op(op) => return operate(&cli, op).await,
    }
    Ok(0)
}

/// Shows what the command will do, asks on a terminal, sends it, prints the verdict.
async fn operate(cli: &Cli, op: &OpCommand) -> Result<i32, CliError> {
    let target = Target::resolve(&cli.target).await?;
    let plan = op.describe();
    if !cli.json {
        for l in &plan {
            println!("{l}");
        }
    }
    if !cli.yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::NotConfirmed(
                "no terminal to ask on: pass --yes to send it".into(),
            ));
        }
        print!(
            "send `{}` to {}? [y/N] ",
            op.action().as_str(),
            target.destination(&op.to_command())
        );
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::NotConfirmed("answered no".into()));
        }
    }
    let answer = invoke::evaluator(&target, &op.to_command()).await?;
    if cli.json {
        print_json(&answer);
    }
    let verdict = answer["verdicts"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["site"] == op.site()).or(vs.first()))
        .cloned()
        .unwrap_or(Value::Null);
    if !cli.json {
        print!("{}", render_verdict(&verdict));
    }
    let refused = matches!(
        verdict["outcome"]["kind"].as_str(),
        Some("refused") | Some("ignore") | None
    );
    Ok(if refused { 1 } else { 0 })
}

fn render_verdict(v: &Value) -> String {
    let o = &v["outcome"];
    let mut outcome = o["kind"].as_str().unwrap_or("?").to_string();
    if let Some(r) = o["reason"].as_str() {
        outcome += &format!(" ({r})");
    }
    if let Some(c) = o["candidate"]["id"].as_str() {
        outcome += &format!(" -> {c}");
    }
    let mut out = format!(
        "verdict: {outcome}   epoch {}   phase {}\n  {}\n",
        v["epoch"],
        v["phase"].as_str().unwrap_or("?"),
        v["summary"].as_str().unwrap_or("")
    );
    for g in v["guards"].as_array().into_iter().flatten() {
        let mark = match g["result"].as_str() {
            Some("pass") => "ok ",
            Some("fail") => "NO ",
            Some("unknown") => "?  ",
            _ => "-  ",
        };
        let nums = match (g["observed"].as_f64(), g["limit"].as_f64()) {
            (Some(a), Some(b)) => format!("  [{a} vs {b}]"),
            _ => String::new(),
        };
        out += &format!(
            "    {mark} {:<18} {}{nums}\n",
            g["guard"].as_str().unwrap_or("?"),
            g["detail"].as_str().unwrap_or("")
        );
    }
    out
}
