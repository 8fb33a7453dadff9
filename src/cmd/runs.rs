//! `krun runs` and `krun runs show ID`: the journals under the state directory.

use crate::app::print;
use crate::cli::{RunsArgs, RunsCommand};
use crate::journal::view::JournalView;

pub fn runs(args: &RunsArgs) -> crate::Result<u8> {
    match &args.command {
        Some(RunsCommand::Show { id }) => {
            let view = JournalView::load(&args.state_dir, id)?;
            print(&view.describe());
            if let Some(argv) = view.header["argv"].as_array() {
                let argv: Vec<&str> = argv.iter().filter_map(|a| a.as_str()).collect();
                print(&format!("  command: {}\n", argv.join(" ")));
            }
            let stopped = view.runs.values().any(|r| r.status != "ok");
            if stopped && view.header["dry_run"] != true {
                print(&format!("  resume with: krun resume {id}\n"));
            }
        }
        None => {
            let all = JournalView::list(&args.state_dir);
            if all.is_empty() {
                print(&format!(
                    "no runs recorded under {}\n",
                    args.state_dir.display()
                ));
            }
            for view in all {
                print(&view.describe());
            }
        }
    }
    Ok(0)
}
