//! WS-Discovery (2005/04, what ONVIF uses): a Probe multicast on
//! 239.255.255.250:3702 is answered with a ProbeMatch naming our device
//! service's address; Hello announces the device when it starts.
//!
//! Pure: datagrams in, datagrams out. Message ids are the caller's (random).

use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;

use crate::soap::{NS_DEVICE, NS_SOAP12};
use crate::xml::esc;
use crate::Error;

pub const MULTICAST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 3702;
/// A Probe is a few hundred bytes; one datagram at most.
pub const MAX_PROBE: usize = 8 * 1024;

const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const NS_WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
const NS_NETWORK: &str = "http://www.onvif.org/ver10/network/wsdl";
const RFC3986: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986";
const STRCMP0: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";

/// What a Probe asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub message_id: String,
    /// (namespace if the prefix resolved, local name)
    pub types: Vec<(Option<String>, String)>,
    pub scopes: Vec<String>,
    pub match_by: Option<String>,
}

/// Parses a datagram; `Ok(None)`: a well-formed message that is not a
/// Probe (a Hello, our own or another device's, a Resolve, …).
pub fn parse_probe(datagram: &[u8]) -> Result<Option<Probe>, Error> {
    if datagram.len() > MAX_PROBE {
        return Err(Error::TooLarge);
    }
    let mut r = NsReader::from_reader(datagram);
    r.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut probe = Probe::default();
    let mut is_probe = false;
    let mut elements = 0;
    loop {
        let (ns, ev) = r
            .read_resolved_event()
            .map_err(|e| Error::Xml(e.to_string()))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                elements += 1;
                if elements > crate::soap::MAX_ELEMENTS || path.len() >= crate::soap::MAX_DEPTH {
                    return Err(Error::Limit("too big"));
                }
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let ns = match ns {
                    ResolveResult::Bound(n) => {
                        Some(String::from_utf8_lossy(n.as_ref()).into_owned())
                    }
                    _ => None,
                };
                let ours = |want: &str| ns.as_deref() == Some(want);
                match (path.len(), local.as_str()) {
                    (0, "Envelope") if ours(NS_SOAP12) => {}
                    (0, _) => return Err(Error::NotSoap),
                    (2, "Probe") if path[1] == "Body" && ours(NS_WSD) => is_probe = true,
                    (3, "Scopes") if path[2] == "Probe" && ours(NS_WSD) => {
                        for a in e.attributes().flatten() {
                            if a.key.local_name().as_ref() == b"MatchBy" {
                                probe.match_by = Some(
                                    a.unescape_value()
                                        .map_err(|e| Error::Xml(e.to_string()))?
                                        .into_owned(),
                                );
                            }
                        }
                    }
                    _ => {}
                }
                if matches!(ev, Event::Start(_)) {
                    path.push(local);
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| Error::Xml(e.to_string()))?;
                let at = |want: &[&str]| path.iter().map(String::as_str).eq(want.iter().copied());
                if at(&["Envelope", "Header", "MessageID"]) {
                    probe.message_id = text.trim().to_owned();
                } else if at(&["Envelope", "Body", "Probe", "Types"]) {
                    for q in text.split_whitespace().take(16) {
                        let (ns, local) = r.resolve_element(QName(q.as_bytes()));
                        let ns = match ns {
                            ResolveResult::Bound(n) => {
                                Some(String::from_utf8_lossy(n.as_ref()).into_owned())
                            }
                            _ => None,
                        };
                        probe
                            .types
                            .push((ns, String::from_utf8_lossy(local.as_ref()).into_owned()));
                    }
                } else if at(&["Envelope", "Body", "Probe", "Scopes"]) {
                    probe
                        .scopes
                        .extend(text.split_whitespace().take(16).map(str::to_owned));
                }
            }
            Event::DocType(_) | Event::CData(_) => return Err(Error::Limit("a DTD or CDATA")),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(is_probe.then_some(probe))
}

/// The device as discovery describes it.
#[derive(Clone, Debug)]
pub struct Announce<'a> {
    /// `urn:uuid:…`, stable for the device.
    pub endpoint: &'a str,
    /// Device service URLs, space-separated in the message.
    pub xaddrs: &'a [String],
    pub name: &'a str,
    pub hardware: &'a str,
}

impl Announce<'_> {
    pub fn scopes(&self) -> Vec<String> {
        vec![
            "onvif://www.onvif.org/Profile/Streaming".into(),
            "onvif://www.onvif.org/type/video_encoder".into(),
            format!(
                "onvif://www.onvif.org/name/{}",
                crate::escape_unreserved(self.name)
            ),
            format!(
                "onvif://www.onvif.org/hardware/{}",
                crate::escape_unreserved(self.hardware)
            ),
        ]
    }

    /// Whether `p` asks for a device like ours (WS-Discovery 5.1: every
    /// type and every scope must match; no types or scopes match anything).
    pub fn matches(&self, p: &Probe) -> bool {
        let types_ok = p.types.iter().all(|(ns, local)| {
            let known = [
                (NS_NETWORK, "NetworkVideoTransmitter"),
                (NS_DEVICE, "Device"),
            ];
            known
                .iter()
                .any(|(kns, kl)| local == kl && ns.as_deref().is_none_or(|n| n == *kns))
        });
        let ours = self.scopes();
        let scopes_ok = match p.match_by.as_deref() {
            None | Some(RFC3986) => p
                .scopes
                .iter()
                .all(|s| ours.iter().any(|o| rfc3986_match(s, o))),
            Some(STRCMP0) => p.scopes.iter().all(|s| ours.contains(s)),
            // A rule we do not know matches nothing.
            Some(_) => p.scopes.is_empty(),
        };
        types_ok && scopes_ok
    }

    fn body(&self) -> String {
        format!(
            "<wsa:EndpointReference><wsa:Address>{}</wsa:Address></wsa:EndpointReference>\
             <d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>{}</d:Scopes>\
             <d:XAddrs>{}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>",
            esc(self.endpoint),
            esc(&self.scopes().join(" ")),
            esc(&self.xaddrs.join(" "))
        )
    }

    /// The answer to `probe` (sent to its sender, unicast).
    pub fn probe_match(&self, probe: &Probe, message_id: &str, seq: Sequence) -> String {
        message(
            &format!(
                "<wsa:MessageID>{}</wsa:MessageID><wsa:RelatesTo>{}</wsa:RelatesTo>\
                 <wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>\
                 <wsa:Action>{NS_WSD}/ProbeMatches</wsa:Action>{}",
                esc(message_id),
                esc(&probe.message_id),
                seq.header()
            ),
            &format!(
                "<d:ProbeMatches><d:ProbeMatch>{}</d:ProbeMatch></d:ProbeMatches>",
                self.body()
            ),
        )
    }

    /// Hello, multicast when the device starts.
    pub fn hello(&self, message_id: &str, seq: Sequence) -> String {
        message(
            &format!(
                "<wsa:MessageID>{}</wsa:MessageID><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>\
                 <wsa:Action>{NS_WSD}/Hello</wsa:Action>{}",
                esc(message_id),
                seq.header()
            ),
            &format!("<d:Hello>{}</d:Hello>", self.body()),
        )
    }
}

/// WS-Discovery's AppSequence: an instance id that grows with each start
/// (the caller's: its start time in seconds) and a message number.
#[derive(Clone, Copy, Debug)]
pub struct Sequence {
    pub instance: u64,
    pub number: u64,
}

impl Sequence {
    fn header(&self) -> String {
        format!(
            "<d:AppSequence InstanceId=\"{}\" MessageNumber=\"{}\"/>",
            self.instance, self.number
        )
    }
}

fn message(header: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{NS_SOAP12}\" \
         xmlns:wsa=\"{NS_WSA}\" xmlns:d=\"{NS_WSD}\" xmlns:dn=\"{NS_NETWORK}\" xmlns:tds=\"{NS_DEVICE}\">\
         <env:Header>{header}</env:Header><env:Body>{body}</env:Body></env:Envelope>"
    )
}

/// RFC 3986 matching as WS-Discovery defines it: same scheme and authority
/// (case-insensitive), and the probe's path segments a prefix of ours.
fn rfc3986_match(probe: &str, ours: &str) -> bool {
    let split = |s: &str| -> Option<(String, Vec<String>)> {
        let (scheme, rest) = s.split_once("://")?;
        let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
        let segs = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        Some((format!("{}://{}", scheme, auth).to_ascii_lowercase(), segs))
    };
    match (split(probe), split(ours)) {
        (Some((pa, ps)), Some((oa, os))) => {
            pa == oa && ps.len() <= os.len() && ps[..] == os[..ps.len()]
        }
        _ => probe == ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What python-wsdiscovery 2.1 (Home Assistant's) multicasts.
    const PROBE: &str = r#"<?xml version="1.0" ?><s:Envelope xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>urn:uuid:8f4e0c2a-1111-2222-3333-444455556666</a:MessageID><a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/Profile/Streaming</d:Scopes></d:Probe></s:Body></s:Envelope>"#;

    fn us() -> (Vec<String>, &'static str) {
        (
            vec!["http://10.0.0.2/onvif/device_service".to_string()],
            "urn:uuid:00000000-0000-4000-8000-000000000001",
        )
    }

    #[test]
    fn answers_home_assistants_probe() {
        let p = parse_probe(PROBE.as_bytes()).unwrap().unwrap();
        assert_eq!(
            p.message_id,
            "urn:uuid:8f4e0c2a-1111-2222-3333-444455556666"
        );
        assert_eq!(
            p.types,
            vec![(
                Some(NS_NETWORK.to_string()),
                "NetworkVideoTransmitter".to_string()
            )]
        );
        let (xaddrs, ep) = us();
        let a = Announce {
            endpoint: ep,
            xaddrs: &xaddrs,
            name: "pinhole cam",
            hardware: "rpi4",
        };
        assert!(a.matches(&p));
        let m = a.probe_match(
            &p,
            "urn:uuid:m1",
            Sequence {
                instance: 7,
                number: 1,
            },
        );
        assert!(m.contains(
            "<wsa:RelatesTo>urn:uuid:8f4e0c2a-1111-2222-3333-444455556666</wsa:RelatesTo>"
        ));
        assert!(m.contains("<d:XAddrs>http://10.0.0.2/onvif/device_service</d:XAddrs>"));
        assert!(m.contains("onvif://www.onvif.org/name/pinhole%20cam"));
        // Our own answer and our Hello are not probes (the socket hears them).
        assert_eq!(parse_probe(m.as_bytes()).unwrap(), None);
        assert_eq!(
            parse_probe(
                a.hello(
                    "urn:uuid:h",
                    Sequence {
                        instance: 7,
                        number: 2
                    }
                )
                .as_bytes()
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn matching() {
        let (xaddrs, ep) = us();
        let a = Announce {
            endpoint: ep,
            xaddrs: &xaddrs,
            name: "cam",
            hardware: "rpi4",
        };
        let probe = |types: &[(&str, &str)], scopes: &[&str], by: Option<&str>| Probe {
            message_id: "x".into(),
            types: types
                .iter()
                .map(|(n, l)| (Some(n.to_string()), l.to_string()))
                .collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            match_by: by.map(str::to_owned),
        };
        assert!(a.matches(&probe(&[], &[], None)));
        assert!(a.matches(&probe(&[(NS_DEVICE, "Device")], &[], None)));
        assert!(!a.matches(&probe(&[("urn:printer", "Printer")], &[], None)));
        assert!(a.matches(&probe(&[], &["onvif://www.onvif.org/Profile"], None)));
        assert!(a.matches(&probe(&[], &["ONVIF://www.onvif.org/name/cam"], None)));
        assert!(!a.matches(&probe(&[], &["onvif://www.onvif.org/Profile/G"], None)));
        assert!(!a.matches(&probe(&[], &["onvif://www.onvif.org/Prof"], None)));
        assert!(!a.matches(&probe(
            &[],
            &["onvif://www.onvif.org/Profile"],
            Some(STRCMP0)
        )));
        assert!(!a.matches(&probe(&[], &["x"], Some("urn:other-rule"))));
    }

    #[test]
    fn bad_datagrams() {
        assert_eq!(parse_probe(b"").unwrap(), None, "nothing: not a probe");
        assert!(parse_probe(b"garbage<").is_err());
        assert!(parse_probe(b"<a/>").is_err());
        assert!(parse_probe(&vec![b' '; MAX_PROBE + 1]).is_err());
        let deep = format!(
            "<s:Envelope xmlns:s=\"{NS_SOAP12}\">{}{}</s:Envelope>",
            "<a>".repeat(40),
            "</a>".repeat(40)
        );
        assert!(parse_probe(deep.as_bytes()).is_err());
    }
}
