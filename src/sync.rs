//! The one lock helper: a poisoned mutex (a thread panicked while holding it) still
//! holds consistent data here, since every critical section is a plain read or write of
//! a map or a list, so the supervisor goes on rather than panicking in turn.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
