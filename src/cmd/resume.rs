//! `krun resume ID`: runs a journaled run's command line again, replaying what it did.

use std::sync::Arc;

use clap::Parser;

use crate::Error;
use crate::cli::{Cli, OutputFormat, ResumeArgs};
use crate::journal::view::JournalView;
use crate::ui::Ui;

pub fn resume(
    runtime: &tokio::runtime::Runtime,
    args: ResumeArgs,
    verbose: u8,
    quiet: bool,
) -> crate::Result<u8> {
    let ui = Ui::new(args.output == OutputFormat::Text && !quiet);
    ui.init_logging(verbose, quiet);
    let state_dir = std::path::absolute(&args.state_dir).unwrap_or(args.state_dir.clone());
    let asked = args.id.clone();
    let view = JournalView::latest_resume(&state_dir, &asked)?;
    let mut args = args;
    if view.id != asked {
        tracing::info!(
            "run {asked} was resumed by run {}, whose journal holds everything done so far: resuming that one",
            view.id
        );
        args.id = view.id.clone();
    }
    if view.finished() {
        let by = if view.id == asked {
            String::new()
        } else {
            format!(" (by its resume, run {})", view.id)
        };
        return Err(Error::refused(format!(
            "run {asked} finished{by}: every node is done, so there is nothing left to resume"
        )));
    }
    let header = &view.header;
    if header["dry_run"] == true {
        return Err(Error::input(format!(
            "run {} was a dry-run: there is nothing to resume; run the playbook again",
            args.id
        )));
    }
    let mut argv: Vec<String> = header["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if argv.is_empty() {
        return Err(Error::input(format!(
            "run {} has no recorded command line",
            args.id
        )));
    }
    let needed: Vec<String> = header["secret_params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let given = crate::params::parse_sets(&args.set_secret)?;
    let missing: Vec<&str> = needed
        .iter()
        .filter(|n| !given.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "run {} used secret parameters, which are never stored: give them again with --set-secret NAME=VALUE for {}",
            args.id,
            missing.join(", ")
        )));
    }
    for arg in &mut argv {
        for (name, value) in &args
            .set_secret
            .iter()
            .filter_map(|s| s.split_once('='))
            .collect::<Vec<_>>()
        {
            if *arg == format!("{name}=***") {
                *arg = format!("{name}={value}");
            } else if *arg == format!("--set-secret={name}=***") {
                *arg = format!("--set-secret={name}={value}");
            }
        }
    }
    if let Some(cwd) = header["cwd"].as_str().filter(|c| !c.is_empty()) {
        std::env::set_current_dir(cwd).map_err(|e| {
            Error::input(format!("run {} ran in {cwd}, which is gone: {e}", args.id))
        })?;
    }
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        Error::input(format!(
            "cannot re-read the command line of run {}: {e}",
            args.id
        ))
    })?;
    let mut run_args = cli.run;
    run_args.state_dir = state_dir;
    run_args.output = args.output;
    let playbook = run_args.playbook.clone().unwrap_or_default();
    let now = std::fs::read_to_string(&playbook)
        .map_err(|e| Error::input(format!("cannot read playbook {}: {e}", playbook.display())))?;
    let then = header["playbook_sha256"].as_str().unwrap_or_default();
    let hash = crate::journal::content_hash(&now);
    if hash != then && !args.allow_changed {
        return Err(Error::input(format!(
            "playbook {} changed since run {} started (sha256 {} then, {} now); \
             review the change, then resume with --allow-changed",
            playbook.display(),
            args.id,
            &then[..then.len().min(12)],
            &hash[..12]
        )));
    }
    if hash != then {
        tracing::warn!(
            "resuming run {} although its playbook changed (--allow-changed)",
            args.id
        );
    }
    let output = run_args.output;
    let mut settings = super::run::settings(run_args)?;
    check_libraries(header, &settings, &args.id, args.allow_changed)?;
    settings.argv = argv_masked(&argv, &needed);
    settings.strict_skew |= args.strict_skew;
    let replay = |view| {
        Arc::new(crate::effects::replay::Replay::new(
            view,
            args.retry_unknown,
        ))
    };
    settings.resume = Some((args.id.clone(), replay(&view)));
    // The plan before the question replays the journal too: its own copy, since a replay is
    // used up as it goes.
    let plan = super::confirm::wanted(&settings, args.yes).then(|| {
        let mut plan = super::confirm::plan_of(&settings);
        plan.resume = Some((args.id.clone(), replay(&view)));
        plan
    });
    tracing::info!(
        "resuming run {}: steps recorded as done are not executed again",
        args.id
    );
    super::run::execute(
        runtime,
        settings,
        plan,
        &super::run::Shown { output, quiet },
        &ui,
    )
}

/// A resumed run uses the library code the run started with (by name and hash), unless
/// `--allow-changed`.
fn check_libraries(
    header: &serde_json::Value,
    settings: &crate::runtime::run::RunSettings,
    id: &str,
    allow_changed: bool,
) -> crate::Result<()> {
    let then: Vec<crate::journal::Provenance> =
        serde_json::from_value(header["libraries"].clone()).unwrap_or_default();
    let now = settings
        .libraries
        .as_ref()
        .map(|l| l.provenance.clone())
        .unwrap_or_default();
    let show = |libraries: &[crate::journal::Provenance]| {
        let shown: Vec<String> = libraries
            .iter()
            .map(|l| {
                format!(
                    "{} {} {}",
                    l.name,
                    l.version,
                    &l.hash[..l.hash.len().min(19)]
                )
            })
            .collect();
        if shown.is_empty() {
            "none".to_owned()
        } else {
            shown.join(", ")
        }
    };
    let key = |l: &crate::journal::Provenance| (l.name.clone(), l.hash.clone());
    if then.iter().map(key).eq(now.iter().map(key)) {
        return Ok(());
    }
    if !allow_changed {
        return Err(Error::input(format!(
            "the libraries changed since run {id} started ({} then, {} now); review the change, \
             then resume with --allow-changed",
            show(&then),
            show(&now)
        )));
    }
    tracing::warn!("resuming run {id} although its libraries changed (--allow-changed)");
    Ok(())
}

/// `argv` with the values of the named secret parameters masked again.
fn argv_masked(argv: &[String], secrets: &[String]) -> Vec<String> {
    argv.iter()
        .map(|arg| {
            let (prefix, rest) = arg
                .strip_prefix("--set-secret=")
                .map_or(("", arg.as_str()), |r| ("--set-secret=", r));
            match rest.split_once('=') {
                Some((name, _)) if secrets.iter().any(|s| s == name) => {
                    format!("{prefix}{name}=***")
                }
                _ => arg.clone(),
            }
        })
        .collect()
}
