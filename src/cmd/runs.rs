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
            for library in view.header["libraries"].as_array().into_iter().flatten() {
                print(&format!(
                    "  library {} {} {}\n",
                    library["name"].as_str().unwrap_or_default(),
                    library["version"].as_str().unwrap_or_default(),
                    library["hash"].as_str().unwrap_or_default()
                ));
            }
            let latest = JournalView::latest_resume(&args.state_dir, id)?;
            if latest.id != *id {
                let state = if latest.finished() {
                    "which finished"
                } else {
                    "which stopped too"
                };
                print(&format!("  resumed by run {}, {state}\n", latest.id));
            }
            if !latest.finished() && view.header["dry_run"] != true {
                print(&format!("  resume with: krun resume {}\n", latest.id));
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
