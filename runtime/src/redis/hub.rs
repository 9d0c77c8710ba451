//! The local side of broadcast: the topics this instance's subscribers hold,
//! each with its bounded channel, and the messages from Redis fanned out to them.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;

use super::metrics::{ReasonLabels, RedisMetrics};

#[derive(Clone, Debug)]
pub(crate) enum Item {
    Message(Bytes),
    /// The instance reconnected: what was published meanwhile is lost.
    Gap,
}

struct Topic {
    tx: broadcast::Sender<Item>,
    subscribers: usize,
}

/// The local side: topics with their subscribers' channel.
pub(crate) struct Hub {
    buffer: usize,
    /// `NAME:bc:`: a topic's Redis channel is the prefix and the topic.
    prefix: String,
    topics: Mutex<HashMap<String, Topic>>,
}

impl Hub {
    pub(crate) fn new(buffer: usize, prefix: String) -> Hub {
        Hub { buffer, prefix, topics: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// Every topic's channel (to subscribe a new connection to).
    pub(crate) fn channels(&self) -> Vec<String> {
        self.lock().keys().map(|t| self.channel(t)).collect()
    }

    /// A message from Redis: `[channel, payload]`.
    pub(crate) fn deliver(&self, data: Vec<redis::Value>, metrics: &RedisMetrics) {
        let mut it = data.into_iter();
        let (Some(channel), Some(payload)) = (it.next(), it.next()) else { return };
        let (Ok(channel), Ok(payload)) = (redis::from_redis_value::<String>(channel), redis::from_redis_value::<Vec<u8>>(payload)) else {
            metrics.dropped.get_or_create(&ReasonLabels { reason: "undecodable" }).inc();
            return;
        };
        let Some(topic) = channel.strip_prefix(&self.prefix) else { return };
        if let Some(t) = self.lock().get(topic) {
            // Err: no receiver left (the last one is leaving): nobody to miss it.
            let _ = t.tx.send(Item::Message(Bytes::from(payload)));
        }
    }

    /// Tells every subscriber it may have missed messages.
    pub(crate) fn gap(&self) {
        for t in self.lock().values() {
            let _ = t.tx.send(Item::Gap);
        }
    }

    /// Adds a subscriber; true if the topic is new on this instance.
    pub(crate) fn join(&self, topic: &str) -> (broadcast::Receiver<Item>, bool) {
        let mut topics = self.lock();
        match topics.get_mut(topic) {
            Some(t) => {
                t.subscribers += 1;
                (t.tx.subscribe(), false)
            }
            None => {
                let (tx, rx) = broadcast::channel(self.buffer);
                topics.insert(topic.to_string(), Topic { tx, subscribers: 1 });
                (rx, true)
            }
        }
    }

    /// Removes a subscriber; true if it was the topic's last.
    pub(crate) fn leave(&self, topic: &str) -> bool {
        let mut topics = self.lock();
        let Some(t) = topics.get_mut(topic) else { return false };
        t.subscribers = t.subscribers.saturating_sub(1);
        if t.subscribers == 0 {
            topics.remove(topic);
            return true;
        }
        false
    }

    pub(crate) fn has(&self, topic: &str) -> bool {
        self.lock().contains_key(topic)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
