//! The state every part of a running simulator shares: the world behind its lock, the clock,
//! the control state, and the channels that wake watches and the controller task.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::faults::ControlState;
use super::world::World;

/// State shared by request handlers, watches and the controller task.
pub(crate) struct Shared {
    pub(super) world: Mutex<World>,
    pub clock: Arc<Clock>,
    pub(super) control: Mutex<ControlState>,
    /// The latest resourceVersion; watches wait on it.
    pub changes: watch::Sender<u64>,
    /// Bumped to end every watch.
    pub drops: watch::Sender<u64>,
    /// Wakes the controller task (a timer may now be due earlier).
    pub controllers: Notify,
    pub shutdown: CancellationToken,
    pub bookmark_interval: Duration,
    pub address: SocketAddr,
    pub(super) time_scale: f64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the world, then wakes watches and controllers.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let (result, rv) = {
            let mut world = self.lock();
            let result = f(&mut world);
            (result, world.rv)
        };
        self.changes
            .send_if_modified(|latest| std::mem::replace(latest, rv) != rv);
        self.controllers.notify_one();
        result
    }

    /// Reads the world without waking anyone.
    pub fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.lock())
    }

    pub fn control(&self) -> MutexGuard<'_, ControlState> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn clock_scale(&self) -> f64 {
        self.time_scale
    }

    /// One round of the controller task: due timers, then the next wake-up.
    pub(super) fn tick(&self) -> Option<Duration> {
        let (next, rv) = {
            let mut world = self.lock();
            world.run_timers();
            (world.next_timer(), world.rv)
        };
        self.changes
            .send_if_modified(|latest| std::mem::replace(latest, rv) != rv);
        next.map(|at| self.clock.real_wait_until(at))
    }
}
