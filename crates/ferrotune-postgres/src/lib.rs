//! ferrotune storage on postgres (in progress).
