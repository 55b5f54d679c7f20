//! ferrotune storage on sqlite (in progress).
