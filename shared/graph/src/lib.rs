//! Graph client
