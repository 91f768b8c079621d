//! The two namespaces and the veth pair between them.

use std::path::Path;

use crate::{Netns, Result, xdp::XdpPass};

pub const CLIENT_V4: &str = "10.53.0.1";
pub const EDGE_V4: &str = "10.53.0.2";
pub const CLIENT_V6: &str = "fd53::1";
pub const EDGE_V6: &str = "fd53::2";
/// The client's end of the veth pair (the same name in every testbed: each has its namespaces).
pub const CLIENT_IF: &str = "veth-client";
/// The edge's end of the veth pair, where dnsfilter attaches.
pub const EDGE_IF: &str = "veth-edge";

/// A client namespace and an edge namespace joined by a veth pair with IPv4 and IPv6
/// addresses. Dropping it detaches the client's XDP_PASS program, kills what runs in the
/// namespaces and deletes them (and the veth pair with them).
pub struct Testbed {
    // Dropped in this order: the program, then the namespaces.
    xdp: Option<XdpPass>,
    pub client: Netns,
    pub edge: Netns,
}

impl Testbed {
    /// The client namespace of the testbed named `base`.
    pub fn client_ns(base: &str) -> String {
        format!("{base}-client")
    }

    /// The edge namespace of the testbed named `base`.
    pub fn edge_ns(base: &str) -> String {
        format!("{base}-edge")
    }

    /// Builds the testbed `base` (namespaces `base-client`, `base-edge`), replacing leftovers
    /// of that name.
    pub fn create(base: &str) -> Result<Testbed> {
        let client = Netns::create(&Testbed::client_ns(base))?;
        let edge = Netns::create(&Testbed::edge_ns(base))?;
        let link = ["ip", "link", "add", CLIENT_IF, "type", "veth", "peer", "name", EDGE_IF, "netns", &edge.name];
        client.exec(&link)?;
        for (ns, iface, v4, v6) in [(&client, CLIENT_IF, CLIENT_V4, CLIENT_V6), (&edge, EDGE_IF, EDGE_V4, EDGE_V6)] {
            ns.exec(&["ip", "addr", "add", &format!("{v4}/24"), "dev", iface])?;
            ns.exec(&["ip", "-6", "addr", "add", &format!("{v6}/64"), "dev", iface, "nodad"])?;
            ns.exec(&["ip", "link", "set", iface, "up"])?;
        }
        // XDP_TX on the edge reaches the client only if the client runs NAPI (GRO) and has an
        // XDP program of its own (see crate::xdp).
        client.exec(&["ethtool", "-K", CLIENT_IF, "gro", "on"])?;
        let xdp = Some(XdpPass::attach(&client, CLIENT_IF)?);
        Ok(Testbed { xdp, client, edge })
    }

    /// Attaches (`on`) or detaches the client's XDP_PASS program, e.g. to let a load generator
    /// that brings its own XDP program (kxdpgun) use the client's end. Without any XDP program
    /// there, answers sent with XDP_TX by the edge never reach the client.
    pub fn set_client_xdp(&mut self, on: bool) -> Result<()> {
        match (on, self.xdp.is_some()) {
            (true, false) => {
                // kxdpgun leaves its program attached (through netlink, not a link) when it exits.
                self.client.exec(&["ip", "link", "set", "dev", CLIENT_IF, "xdp", "off"])?;
                self.xdp = Some(XdpPass::attach(&self.client, CLIENT_IF)?);
            }
            (false, true) => self.xdp = None,
            _ => {}
        }
        Ok(())
    }

    /// Builds a testbed whose names no other test or process uses.
    pub fn unique(tag: &str) -> Result<Testbed> {
        Testbed::create(&crate::unique_name(tag))
    }

    /// Leaves the testbed up after this process exits; the client's XDP_PASS link is pinned
    /// at `xdp_pin` to stay attached.
    pub fn keep(self, xdp_pin: &Path) -> Result<()> {
        let Testbed { xdp, client, edge } = self;
        if let Some(xdp) = &xdp {
            xdp.pin(xdp_pin)?;
        }
        client.keep();
        edge.keep();
        Ok(())
    }

    /// Removes the testbed `base` if it exists (and what runs in it), and the pin `xdp_pin`.
    pub fn remove(base: &str, xdp_pin: &Path) {
        Netns::remove(&Testbed::client_ns(base));
        Netns::remove(&Testbed::edge_ns(base));
        let _ = std::fs::remove_file(xdp_pin);
    }
}
