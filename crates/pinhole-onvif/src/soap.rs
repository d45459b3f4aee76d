//! A SOAP request as ONVIF clients send it: the operation (first element of
//! the Body, with its namespace), the WS-Security UsernameToken from the
//! Header, and the Body's leaf values (`ProfileToken`, `Protocol`, …).
//!
//! Parsed with quick-xml, within limits: a request is small (a few hundred
//! bytes from onvif-zeep), so anything big, deep or wide is refused before
//! it costs memory. No DTDs (no entity tricks); quick-xml knows only the
//! predefined and numeric entities.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::Error;

/// The largest request body we read (the HTTP layer stops at it too).
pub const MAX_REQUEST: usize = 32 * 1024;
/// Element nesting (ONVIF requests are about 6 deep).
pub const MAX_DEPTH: usize = 24;
/// Elements in one request.
pub const MAX_ELEMENTS: usize = 512;
/// Body leaf values kept.
pub const MAX_PARAMS: usize = 32;
/// One text value (a token, a nonce, a password).
pub const MAX_TEXT: usize = 1024;

pub const NS_SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
const NS_WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";

/// The service an operation belongs to (by its namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Service {
    Device,
    Media,
    /// Any other namespace (PTZ, events, imaging, media2, …): not offered.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub service: Service,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordType {
    /// `#PasswordDigest`: Base64(SHA-1(nonce ‖ created ‖ password)).
    Digest,
    /// `#PasswordText` (or no type): the password itself.
    Text,
}

/// WS-Security's UsernameToken (OASIS UsernameToken Profile 1.0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password: String,
    pub kind: PasswordType,
    /// The nonce as sent (Base64).
    pub nonce: Option<String>,
    /// `wsu:Created`, as sent.
    pub created: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub operation: Operation,
    pub token: Option<UsernameToken>,
    /// SOAP 1.1 envelope (answered in kind); ONVIF's own is 1.2.
    pub soap11: bool,
    /// Leaf elements of the Body below the operation: (local name, text),
    /// first occurrences, at most [`MAX_PARAMS`].
    pub params: Vec<(String, String)>,
}

impl Request {
    /// The text of the first Body leaf named `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where in the envelope an element sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Envelope,
    Header,
    Security,
    UsernameToken,
    /// A child of UsernameToken whose text we keep.
    TokenField(Field),
    Body,
    /// The operation or anything below it.
    InOperation,
    /// Anything else (other headers, their children).
    Elsewhere,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Username,
    Password,
    Nonce,
    Created,
}

/// Parses one request body.
pub fn parse(body: &[u8]) -> Result<Request, Error> {
    if body.len() > MAX_REQUEST {
        return Err(Error::TooLarge);
    }
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(true);
    // Every start tag must be closed by its own name (quick-xml's default).
    let mut stack: Vec<(Place, String)> = Vec::new();
    let mut elements = 0usize;
    let mut soap11 = None;
    let mut operation: Option<Operation> = None;
    let mut params: Vec<(String, String)> = Vec::new();
    let mut token = TokenParts::default();
    let mut saw_token = false;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| Error::Xml(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(Error::Limit("too many elements"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::Limit("nested too deep"));
                }
                let local = local_name(e)?;
                let ns = namespace(&ns)?;
                let parent = stack.last().map(|(p, _)| *p);
                let place = match parent {
                    None => {
                        if local != "Envelope" {
                            return Err(Error::NotSoap);
                        }
                        soap11 = Some(match ns.as_deref() {
                            Some(NS_SOAP12) => false,
                            Some(NS_SOAP11) => true,
                            _ => return Err(Error::NotSoap),
                        });
                        Place::Envelope
                    }
                    Some(Place::Envelope) => match local.as_str() {
                        "Header" => Place::Header,
                        "Body" => Place::Body,
                        _ => Place::Elsewhere,
                    },
                    Some(Place::Header)
                        if local == "Security" && ns.as_deref() == Some(NS_WSSE) =>
                    {
                        Place::Security
                    }
                    Some(Place::Security) if local == "UsernameToken" => {
                        if saw_token {
                            // Two tokens: which one counts would be a guess.
                            return Err(Error::Limit("more than one UsernameToken"));
                        }
                        saw_token = true;
                        Place::UsernameToken
                    }
                    Some(Place::UsernameToken) => match local.as_str() {
                        "Username" => Place::TokenField(Field::Username),
                        "Password" => {
                            token.kind = password_type(e)?;
                            Place::TokenField(Field::Password)
                        }
                        "Nonce" => Place::TokenField(Field::Nonce),
                        "Created" => Place::TokenField(Field::Created),
                        _ => Place::Elsewhere,
                    },
                    Some(Place::Body) => {
                        if operation.is_some() {
                            return Err(Error::Limit("more than one operation in the Body"));
                        }
                        let service = match ns.as_deref() {
                            Some(NS_DEVICE) => Service::Device,
                            Some(NS_MEDIA) => Service::Media,
                            Some(other) => Service::Other(other.to_owned()),
                            None => Service::Other(String::new()),
                        };
                        operation = Some(Operation {
                            service,
                            name: local.clone(),
                        });
                        Place::InOperation
                    }
                    Some(Place::InOperation) => Place::InOperation,
                    Some(_) => Place::Elsewhere,
                };
                if matches!(event, Event::Start(_)) {
                    stack.push((place, local));
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| Error::Xml(e.to_string()))?;
                if text.len() > MAX_TEXT {
                    return Err(Error::Limit("a value is too long"));
                }
                match stack.last() {
                    Some((Place::TokenField(f), _)) => token.set(*f, &text),
                    Some((Place::InOperation, name))
                        if stack.len() > 3 && !params.iter().any(|(k, _)| k == name) =>
                    {
                        if params.len() >= MAX_PARAMS {
                            return Err(Error::Limit("too many values"));
                        }
                        params.push((name.clone(), text.into_owned()));
                    }
                    _ => {}
                }
            }
            Event::CData(_) => return Err(Error::Limit("CDATA")),
            Event::DocType(_) => return Err(Error::Limit("a DTD")),
            Event::Eof => break,
            // Declarations, comments, processing instructions: ignored.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(Error::Xml("unclosed elements".into()));
    }
    let soap11 = soap11.ok_or(Error::NotSoap)?;
    let operation = operation.ok_or(Error::NoOperation)?;
    let token = if saw_token {
        Some(token.finish()?)
    } else {
        None
    };
    Ok(Request {
        operation,
        token,
        soap11,
        params,
    })
}

#[derive(Default)]
struct TokenParts {
    username: Option<String>,
    password: Option<String>,
    kind: Option<PasswordType>,
    nonce: Option<String>,
    created: Option<String>,
}

impl TokenParts {
    fn set(&mut self, f: Field, text: &str) {
        let slot = match f {
            Field::Username => &mut self.username,
            Field::Password => &mut self.password,
            Field::Nonce => &mut self.nonce,
            Field::Created => &mut self.created,
        };
        if slot.is_none() {
            *slot = Some(text.to_owned());
        }
    }

    fn finish(self) -> Result<UsernameToken, Error> {
        Ok(UsernameToken {
            username: self.username.unwrap_or_default(),
            // An empty <Password/> gives no text event: an empty password.
            password: self.password.unwrap_or_default(),
            kind: self.kind.unwrap_or(PasswordType::Text),
            nonce: self.nonce,
            created: self.created,
        })
    }
}

fn local_name(e: &BytesStart<'_>) -> Result<String, Error> {
    std::str::from_utf8(e.local_name().as_ref())
        .map(str::to_owned)
        .map_err(|_| Error::Xml("a name is not UTF-8".into()))
}

fn namespace(ns: &ResolveResult<'_>) -> Result<Option<String>, Error> {
    match ns {
        ResolveResult::Bound(n) => std::str::from_utf8(n.as_ref())
            .map(|s| Some(s.to_owned()))
            .map_err(|_| Error::Xml("a namespace is not UTF-8".into())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) => Err(Error::Xml(format!(
            "undeclared prefix '{}'",
            String::from_utf8_lossy(p)
        ))),
    }
}

fn password_type(e: &BytesStart<'_>) -> Result<Option<PasswordType>, Error> {
    for a in e.attributes() {
        let a = a.map_err(|e| Error::Xml(e.to_string()))?;
        if a.key.local_name().as_ref() == b"Type" {
            let v = a.unescape_value().map_err(|e| Error::Xml(e.to_string()))?;
            return Ok(Some(if v.ends_with("#PasswordDigest") {
                PasswordType::Digest
            } else if v.ends_with("#PasswordText") {
                PasswordType::Text
            } else {
                return Err(Error::Limit("an unknown password type"));
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What onvif-zeep-async sends (captured from zeep 4.3, shortened ids).
    pub(crate) const GET_STREAM_URI: &str = r#"<?xml version='1.0' encoding='utf-8'?>
<soap-env:Envelope xmlns:soap-env="http://www.w3.org/2003/05/soap-envelope"><soap-env:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>viewer</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">kq0IMh2Kw9Sx4Ee9Pf4Hs0jdyVs=</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">d2hhdGV2ZXIgbm9uY2U=</wsse:Nonce><wsu:Created xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">2026-12-07T15:00:00+00:00</wsu:Created></wsse:UsernameToken></wsse:Security></soap-env:Header><soap-env:Body><ns0:GetStreamUri xmlns:ns0="http://www.onvif.org/ver10/media/wsdl"><ns0:StreamSetup><ns1:Stream xmlns:ns1="http://www.onvif.org/ver10/schema">RTP-Unicast</ns1:Stream><ns2:Transport xmlns:ns2="http://www.onvif.org/ver10/schema"><ns2:Protocol>RTSP</ns2:Protocol></ns2:Transport></ns0:StreamSetup><ns0:ProfileToken>main</ns0:ProfileToken></ns0:GetStreamUri></soap-env:Body></soap-env:Envelope>"#;

    #[test]
    fn parses_what_zeep_sends() {
        let r = parse(GET_STREAM_URI.as_bytes()).unwrap();
        assert_eq!(r.operation.service, Service::Media);
        assert_eq!(r.operation.name, "GetStreamUri");
        assert!(!r.soap11);
        assert_eq!(r.param("ProfileToken"), Some("main"));
        assert_eq!(r.param("Protocol"), Some("RTSP"));
        assert_eq!(r.param("Stream"), Some("RTP-Unicast"));
        let t = r.token.unwrap();
        assert_eq!(t.username, "viewer");
        assert_eq!(t.kind, PasswordType::Digest);
        assert_eq!(t.password, "kq0IMh2Kw9Sx4Ee9Pf4Hs0jdyVs=");
        assert_eq!(t.nonce.as_deref(), Some("d2hhdGV2ZXIgbm9uY2U="));
        assert_eq!(t.created.as_deref(), Some("2026-12-07T15:00:00+00:00"));
    }

    #[test]
    fn empty_operation_without_header_and_soap11() {
        let r = parse(
            br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>"#,
        )
        .unwrap();
        assert!(r.soap11);
        assert_eq!(r.operation.service, Service::Device);
        assert_eq!(r.operation.name, "GetSystemDateAndTime");
        assert!(r.token.is_none());
    }

    #[test]
    fn other_services_are_named() {
        let r = parse(br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><p:GetNodes xmlns:p="http://www.onvif.org/ver20/ptz/wsdl"/></e:Body></e:Envelope>"#).unwrap();
        assert_eq!(
            r.operation.service,
            Service::Other("http://www.onvif.org/ver20/ptz/wsdl".into())
        );
    }

    #[test]
    fn refuses_what_is_not_a_small_soap_request() {
        let env = |body: &str| {
            format!(
                r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>{body}</e:Body></e:Envelope>"#
            )
        };
        assert!(parse(b"garbage").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<Envelope/>").is_err(), "no SOAP namespace");
        assert_eq!(parse(env("").as_bytes()), Err(Error::NoOperation));
        assert!(parse(env("<a:X xmlns:a=\"u\"/><a:Y xmlns:a=\"u\"/>").as_bytes()).is_err());
        assert!(
            parse(env("<x:Op/>").as_bytes()).is_err(),
            "undeclared prefix"
        );
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert_eq!(
            parse(env(&deep).as_bytes()),
            Err(Error::Limit("nested too deep"))
        );
        let wide = format!("<Op>{}</Op>", "<a/>".repeat(600));
        assert_eq!(
            parse(env(&wide).as_bytes()),
            Err(Error::Limit("too many elements"))
        );
        let long = format!("<Op><v>{}</v></Op>", "x".repeat(2000));
        assert_eq!(
            parse(env(&long).as_bytes()),
            Err(Error::Limit("a value is too long"))
        );
        assert_eq!(parse(&vec![b' '; MAX_REQUEST + 1]), Err(Error::TooLarge));
        let dtd = format!(
            "<!DOCTYPE e [<!ENTITY x \"y\">]>{}",
            env("<Op><v>&x;</v></Op>")
        );
        assert!(parse(dtd.as_bytes()).is_err());
        assert!(
            parse(env("<Op><v>&x;</v></Op>").as_bytes()).is_err(),
            "unknown entity"
        );
        assert!(parse(env("<Op>").as_bytes()).is_err(), "unclosed");
    }

    #[test]
    fn two_tokens_are_refused() {
        let tok = "<w:UsernameToken><w:Username>a</w:Username></w:UsernameToken>";
        let req = format!(
            r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Header><w:Security xmlns:w="{NS_WSSE}">{tok}{tok}</w:Security></e:Header><e:Body><GetProfiles xmlns="{NS_MEDIA}"/></e:Body></e:Envelope>"#
        );
        assert!(parse(req.as_bytes()).is_err());
    }
}
