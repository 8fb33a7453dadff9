//! `krun unlock`: clears an expired cluster lock, or breaks a live one with `--force`.

use crate::Error;
use crate::app::print;
use crate::cli::UnlockArgs;

pub async fn unlock(args: UnlockArgs) -> crate::Result<u8> {
    use crate::kube::lock::{LockName, Unlocked};
    let name = LockName::parse(&args.lock).map_err(Error::input)?;
    let kube = crate::kube::Kube::connect(&args.cluster.options()).await?;
    let by = format!(
        "{}@{}",
        crate::inventory::current_user(),
        crate::journal::hostname()
    );
    match crate::kube::lock::unlock(&kube, &name, args.force, &by).await? {
        Unlocked::NotHeld => print(&format!("the lock {name} is not held\n")),
        Unlocked::Expired(was) => {
            tracing::warn!("cleared the expired lock {name}, held by {was}");
            print(&format!(
                "cleared the lock {name} (expired; was held by {was})\n"
            ));
        }
        Unlocked::Broken(was) => {
            tracing::warn!("broke the lock {name} held by {was}");
            print(&format!("broke the lock {name}, held by {was}\n"));
        }
    }
    Ok(0)
}
