//! The development provider: each message is printed on standard output (as web frameworks print e-mails in
//! development) and kept in a short in-memory outbox that tests read. Production refuses it (a config finding).

use std::collections::VecDeque;

use parking_lot::Mutex;

use super::{MessageKind, PhoneNumber, Sent};
use crate::ids::UserId;

/// Messages kept for [`Console::outbox`]; older ones are forgotten.
const OUTBOX: usize = 256;

/// One message the console "sent".
#[derive(Clone, Debug)]
pub struct ConsoleMessage {
    pub to: PhoneNumber,
    pub text: String,
    pub kind: MessageKind,
    pub reference_id: String,
}

#[derive(Default)]
pub struct Console {
    outbox: Mutex<VecDeque<ConsoleMessage>>,
}

impl Console {
    pub(super) fn send(
        &self,
        _actor: &UserId,
        to: &PhoneNumber,
        text: &str,
        kind: MessageKind,
    ) -> Sent {
        let reference_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        // Standard output, not the log: this is the message itself, which the developer is meant to read.
        println!(
            "--- SMS ({}) to +{} [{reference_id}]\n{text}\n---",
            kind.as_str(),
            to.digits()
        );
        let mut outbox = self.outbox.lock();
        if outbox.len() == OUTBOX {
            outbox.pop_front();
        }
        outbox.push_back(ConsoleMessage {
            to: to.clone(),
            text: text.to_string(),
            kind,
            reference_id: reference_id.clone(),
        });
        Sent {
            reference_id,
            status_code: 290,
            status: "Message in progress".into(),
        }
    }

    /// The messages sent, oldest first.
    pub fn outbox(&self) -> Vec<ConsoleMessage> {
        self.outbox.lock().iter().cloned().collect()
    }

    /// The newest message sent to `to`.
    pub fn last_to(&self, to: &PhoneNumber) -> Option<ConsoleMessage> {
        self.outbox
            .lock()
            .iter()
            .rev()
            .find(|m| &m.to == to)
            .cloned()
    }
}
