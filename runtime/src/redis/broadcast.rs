//! Broadcast: publish from any handler on any instance or host, receive in
//! every subscriber on every instance — the job of socket.io's Redis adapter.
//!
//! Each instance holds one Redis subscription per topic that has local
//! subscribers, on its one connection, and fans each message out to them
//! through a bounded in-process channel (`redis.broadcast_buffer` messages):
//! a thousand WebSockets on a topic cost Redis one subscriber per instance.
//!
//! Delivery is at most once, as with socket.io's adapter: a message reaches
//! the subscribers that were subscribed, on instances that were connected,
//! when it was published. Nothing is replayed. A subscriber is told when it
//! may have missed messages — [`Received::Gap`] — when it fell more than
//! `broadcast_buffer` messages behind (the count is known) or when its
//! instance lost Redis and reconnected (the count is not); an application
//! that must not miss any reloads its state then (or keeps a Redis stream).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;

use super::error::RedisError;
use super::hub::Item;
use super::link::Link;
use super::metrics::ReasonLabels;

/// Longest topic name (bytes).
pub const MAX_TOPIC: usize = 256;

/// Publishing and subscribing: `ctx.broadcast()?`.
#[derive(Clone)]
pub struct Broadcast {
    pub(crate) link: Arc<Link>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast").field("topics", &self.link.hub.len()).finish()
    }
}

/// What a [`Subscription`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message, as published.
    Message(Bytes),
    /// Messages may have been missed: `Some(n)` when this subscriber fell
    /// `n` messages behind, `None` when the instance lost Redis for a while.
    Gap(Option<u64>),
}

fn check_topic(topic: &str) -> Result<(), RedisError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC || topic.chars().any(char::is_control) {
        return Err(RedisError::Invalid(format!("a topic is 1 to {MAX_TOPIC} bytes without control characters")));
    }
    Ok(())
}

impl Broadcast {
    /// Publishes `message` to `topic` on every instance and host; answers how
    /// many instances had subscribers to it (Redis's count of receivers).
    /// Larger than `redis.max_message`: refused (413).
    pub async fn publish(&self, topic: &str, message: impl Into<Bytes>) -> Result<usize, RedisError> {
        check_topic(topic)?;
        let message = message.into();
        let limit = self.link.cfg.max_message;
        if message.len() > limit {
            return Err(RedisError::TooLarge { size: message.len(), limit });
        }
        let channel = self.link.hub.channel(topic);
        let n = self.link.call(|mut c| async move { redis::cmd("PUBLISH").arg(channel).arg(message.as_ref()).query_async::<usize>(&mut c).await }).await?;
        self.link.metrics.published.inc();
        Ok(n)
    }

    /// Subscribes to `topic`: the first local subscriber subscribes the
    /// instance in Redis; later ones share it. 503 while Redis is down.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, RedisError> {
        check_topic(topic)?;
        let mut conn = self.link.connection()?;
        let (rx, new) = self.link.hub.join(topic);
        let sub = Subscription { rx, topic: topic.to_string(), link: self.link.clone() };
        if new {
            self.link.metrics.topics.set(self.link.hub.len() as i64);
            let channel = self.link.hub.channel(topic);
            // Sent at this first poll, before anything else runs on the
            // instance's single-threaded loop: ordered after any UNSUBSCRIBE
            // a leaving subscriber sent for the same topic.
            match tokio::time::timeout(self.link.cfg.timeout, conn.subscribe(channel)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(RedisError::Connection(e)),
                Err(_) => return Err(RedisError::Timeout(self.link.cfg.timeout)),
            }
        }
        Ok(sub)
    }
}

/// One subscriber's end of a topic; dropping it leaves the topic (the last
/// one out unsubscribes the instance in Redis).
pub struct Subscription {
    rx: broadcast::Receiver<Item>,
    topic: String,
    link: Arc<Link>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("topic", &self.topic).finish()
    }
}

impl Subscription {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next message or gap; `None` never happens while the instance runs
    /// (the subscription lives as long as this value).
    pub async fn recv(&mut self) -> Option<Received> {
        match self.rx.recv().await {
            Ok(Item::Message(m)) => {
                self.link.metrics.delivered.inc();
                Some(Received::Message(m))
            }
            Ok(Item::Gap) => Some(Received::Gap(None)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.link.metrics.dropped.get_or_create(&ReasonLabels { reason: "lagged" }).inc_by(n);
                Some(Received::Gap(Some(n)))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.link.hub.leave(&self.topic) {
            return;
        }
        self.link.metrics.topics.set(self.link.hub.len() as i64);
        let (link, topic) = (self.link.clone(), std::mem::take(&mut self.topic));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                // A subscriber that came back meanwhile keeps the subscription.
                if link.hub.has(&topic) {
                    return;
                }
                if let Ok(mut c) = link.connection() {
                    let _ = tokio::time::timeout(link.cfg.timeout, c.unsubscribe(link.hub.channel(&topic))).await;
                }
            });
        }
    }
}
