//! The actions function: one Lambda for the write half. Three kinds of event reach it:
//! an SQS FIFO batch of action messages (each executed once, per-user order kept, failures
//! reported per message), a direct invocation that submits an action and answers with its
//! result at once (the host product's "do it now"), and the schedule's tick (due workflows,
//! approval expiry, lost-message redelivery).

pub mod handler;
