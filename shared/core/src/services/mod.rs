//! Services
