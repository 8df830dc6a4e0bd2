//! The client's address, for per-client limits. `X-Forwarded-For` is written by whoever sends the
//! request, so it is believed only from configured proxies, and only as far back as the chain of
//! trusted proxies goes: the right-most address that is not a trusted proxy is the client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::HttpRequest;

use crate::config::ProxyRange;

const FORWARDED_FOR: &str = "x-forwarded-for";

pub fn of_request(req: &HttpRequest, trusted: &[ProxyRange]) -> IpAddr {
    // Requests always come with a peer from a socket; only hand-made test requests lack one.
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip());
    let forwarded = req
        .headers()
        .get_all(FORWARDED_FOR)
        .filter_map(|value| value.to_str().ok());
    client_ip(peer, forwarded, trusted)
}

/// `forwarded_for` holds the header's values in the order received; a proxy appends the address
/// it received the request from, so the list reads client-first, nearest-hop-last.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[ProxyRange],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
    for hop in hops.into_iter().rev() {
        match parse_hop(hop.trim()) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    return ip;
                }
            }
            // What lies left of a malformed entry cannot be told apart from a forgery: stop at
            // the last hop a trusted proxy vouched for.
            None => return client,
        }
    }
    client
}

/// An entry is an address, possibly with a port (`203.0.113.7:5123`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(value: &str) -> IpAddr {
        value.parse().unwrap()
    }

    fn trusted() -> Vec<ProxyRange> {
        vec!["10.0.0.1".parse().unwrap(), "10.0.1.0/24".parse().unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let got = client_ip(ip("198.51.100.9"), ["1.2.3.4"].into_iter(), &trusted());
        assert_eq!(got, ip("198.51.100.9"));
        assert_eq!(
            client_ip(ip("198.51.100.9"), ["1.2.3.4"].into_iter(), &[]),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let forwarded = ["6.6.6.6, 203.0.113.7", "10.0.1.5"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), forwarded.into_iter(), &trusted()),
            ip("203.0.113.7"),
            "a spoofed left-most entry is ignored"
        );
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["203.0.113.7:5123"].into_iter(), &trusted()),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(
                ip("10.0.0.1"),
                ["[2001:db8::1]:443"].into_iter(),
                &trusted()
            ),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(
                ip("::ffff:10.0.0.1"),
                ["203.0.113.7"].into_iter(),
                &trusted()
            ),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_trusted_peer_without_a_usable_header_is_the_client() {
        assert_eq!(
            client_ip(ip("10.0.0.1"), std::iter::empty(), &trusted()),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(
                ip("10.0.0.1"),
                ["garbage, 10.0.1.9"].into_iter(),
                &trusted()
            ),
            ip("10.0.1.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["10.0.1.9"].into_iter(), &trusted()),
            ip("10.0.1.9"),
            "only trusted hops: the furthest one"
        );
    }
}
