//! Fleet: this node as a secondary of the ISP's policy zones (RPZ over AXFR/IXFR with TSIG,
//! NOTIFY), every verified transfer applied as one generation, the last good copy kept for
//! ever. See docs/fleet.md.

pub mod conf;
pub mod control;
pub mod notify;
pub mod run;
pub mod store;
pub mod xfr;
