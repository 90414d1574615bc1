//! Graph emulator (being written)
