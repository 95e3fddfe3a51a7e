//! A named thread that runs until asked to stop: a flag it checks and an
//! unpark to end its sleep early. Stopping (or dropping) joins it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

#[derive(Debug)]
pub(crate) struct StoppableThread {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl StoppableThread {
    /// Start `body` on a thread called `name`; it should return soon after
    /// the flag it gets is set (it is unparked then).
    pub fn spawn(
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<StoppableThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name(name.into()).spawn({
            let stop = stop.clone();
            move || body(&stop)
        })?;
        Ok(StoppableThread {
            thread: Some(thread),
            stop,
        })
    }

    /// Set the flag, wake the thread, wait for it to end.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for StoppableThread {
    fn drop(&mut self) {
        self.stop();
    }
}
