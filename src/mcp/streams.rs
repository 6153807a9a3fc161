//! How many notification streams each person holds open on this instance, so one account cannot hold
//! unbounded connections, tasks and channel receivers (`MCP_MAX_STREAMS_PER_USER`).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone)]
pub struct OpenStreams {
    by_subject: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream; dropping it closes the count.
#[derive(Debug)]
pub struct StreamSlot {
    streams: OpenStreams,
    subject: String,
}

impl OpenStreams {
    /// Takes one of `subject`'s `limit` streams; `None` when all are open.
    pub fn open(&self, subject: &str, limit: usize) -> Option<StreamSlot> {
        let mut open = self.by_subject.lock().expect("open streams lock");
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(StreamSlot { streams: self.clone(), subject: subject.to_owned() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.by_subject.lock().expect("open streams lock");
        if let Some(count) = open.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subject_has_its_own_limit_and_a_closed_stream_frees_its_slot() {
        let streams = OpenStreams::default();
        let a = streams.open("ada", 2).unwrap();
        let _b = streams.open("ada", 2).unwrap();
        assert!(streams.open("ada", 2).is_none());
        assert!(streams.open("bob", 2).is_some());
        drop(a);
        assert!(streams.open("ada", 2).is_some());
    }
}
