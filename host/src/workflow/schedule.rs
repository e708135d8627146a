//! (issue 5: to be written)
