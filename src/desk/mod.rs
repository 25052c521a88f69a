//! The operator's desk: the commands a help desk and an operator use between cycles (`audit`, `explain`,
//! `pause`/`resume`, `except`, `undo`). Each reads or writes rostersync's own tables; none needs the daemon.

pub mod audit;
pub mod except;
pub mod explain;
pub mod pause;
pub mod time;
