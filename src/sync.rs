//! The supervisor's two synchronisation helpers.
//!
//! [`lock`]: a poisoned mutex (a thread panicked while holding it) still holds
//! consistent data here, since every critical section is a plain read or write of a map
//! or a list, so the supervisor goes on rather than panicking in turn.
//!
//! [`Freeze`]: the signal that stops the tasks reading workers' pipes and channels at a
//! clean point, so what they hold can cross an in-place upgrade (`crate::upgrade`).

use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tells the tasks that read from workers to stop and hand back what they hold. Cheap
/// to clone; a freeze is for good.
#[derive(Debug, Clone)]
pub struct Freeze(watch::Receiver<bool>);

/// The one that sends a [`Freeze`].
#[derive(Debug)]
pub struct FreezeSender(watch::Sender<bool>);

impl FreezeSender {
    pub fn new() -> FreezeSender {
        FreezeSender(watch::channel(false).0)
    }

    pub fn subscribe(&self) -> Freeze {
        Freeze(self.0.subscribe())
    }

    pub fn freeze(&self) {
        self.0.send_replace(true);
    }
}

impl Default for FreezeSender {
    fn default() -> Self {
        FreezeSender::new()
    }
}

impl Freeze {
    /// A signal that never comes (a pump outside any supervisor: tests, tools).
    pub fn never() -> Freeze {
        Freeze(watch::channel(false).1)
    }

    pub fn is_frozen(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once frozen; never, if the sender is gone without freezing.
    pub async fn frozen(&mut self) {
        if self.0.wait_for(|frozen| *frozen).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
