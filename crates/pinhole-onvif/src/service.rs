//! The device and media services: which operation needs credentials, and
//! the answer to each (SOAP text), from facts the caller gathers (names,
//! the stream's size and rate, the URLs). Unknown operations, other
//! services and bad arguments are SOAP faults (ONVIF Core 5.11), never an
//! HTTP 500.

use crate::soap::{Request, Service, NS_DEVICE, NS_MEDIA, NS_SOAP11, NS_SOAP12};
use crate::wsse::Utc;
use crate::xml::esc;

/// The one media profile's token.
pub const PROFILE: &str = "main";
const VIDEO_SOURCE: &str = "video";
const NS_SCHEMA: &str = "http://www.onvif.org/ver10/schema";
const NS_ERROR: &str = "http://www.onvif.org/ver10/error";

/// What the device says about itself.
#[derive(Clone, Debug, Default)]
pub struct DeviceInfo {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    /// Stable per device (Home Assistant uses it as the unique id when
    /// GetNetworkInterfaces is not offered).
    pub serial: String,
    pub hardware: String,
}

/// The stream as it is now.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// kbit/s (0: not known).
    pub bitrate_kbps: u32,
    /// Frames between keyframes (0: not known).
    pub gop: u32,
}

/// Everything an answer may need; URLs absolute, as the client reached us.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub device: &'a DeviceInfo,
    pub stream: StreamInfo,
    pub device_xaddr: &'a str,
    pub media_xaddr: &'a str,
    /// `rtsp://host:port/stream`.
    pub rtsp_uri: &'a str,
    /// `http://host/snapshot.jpg` (with a viewer token when one is needed).
    pub snapshot_uri: &'a str,
    /// Wall clock, µs since the Unix epoch.
    pub now_us: u64,
}

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// ONVIF's PRE_AUTH class: clients call these before they have
    /// credentials (the clock, to make a digest the device accepts; the
    /// service addresses).
    PreAuth,
    /// The viewer policy (docs/rtsp.md): a stream's address is a viewer's.
    Viewer,
}

pub fn access(req: &Request) -> Access {
    match (&req.operation.service, req.operation.name.as_str()) {
        (
            Service::Device,
            "GetSystemDateAndTime"
            | "GetCapabilities"
            | "GetServices"
            | "GetServiceCapabilities"
            | "GetWsdlUrl"
            | "GetEndpointReference",
        ) => Access::PreAuth,
        // Faults for what we do not offer need no credentials either.
        (Service::Other(_), _) => Access::PreAuth,
        _ => Access::Viewer,
    }
}

/// A SOAP fault (ONVIF Core 5.11.2: code, ONVIF subcode, reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// true: `env:Sender` (HTTP 400); false: `env:Receiver` (HTTP 500).
    pub sender: bool,
    /// `ter:…` subcodes, outermost first.
    pub subcodes: &'static [&'static str],
    pub reason: String,
}

impl Fault {
    pub fn not_authorized() -> Fault {
        Fault {
            sender: true,
            subcodes: &["NotAuthorized"],
            reason: "Sender not authorized".into(),
        }
    }

    /// An operation we do not offer. The reason's "not implemented" is what
    /// Home Assistant looks for to carry on without (GetNetworkInterfaces).
    pub fn not_supported(name: &str) -> Fault {
        Fault {
            sender: false,
            subcodes: &["ActionNotSupported"],
            reason: format!("Optional action {name} is not implemented"),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Fault {
        Fault {
            sender: true,
            subcodes: &["WellFormed"],
            reason: reason.into(),
        }
    }

    fn no_profile(token: &str) -> Fault {
        Fault {
            sender: true,
            subcodes: &["InvalidArgVal", "NoProfile"],
            reason: format!("no profile '{token}' (the profile is '{PROFILE}')"),
        }
    }

    fn bad_setup(what: &str) -> Fault {
        Fault {
            sender: true,
            subcodes: &["InvalidArgVal", "InvalidStreamSetup"],
            reason: format!("{what} is not offered (RTSP over TCP or UDP unicast is)"),
        }
    }

    pub fn status(&self) -> u16 {
        if self.sender {
            400
        } else {
            500
        }
    }

    /// The fault's envelope (SOAP 1.2, or 1.1 for a 1.1 request).
    pub fn envelope(&self, soap11: bool) -> String {
        let body = if soap11 {
            let code = if self.sender { "Client" } else { "Server" };
            format!(
                "<env:Fault><faultcode>env:{code}</faultcode><faultstring>{}</faultstring></env:Fault>",
                esc(&self.reason)
            )
        } else {
            let code = if self.sender { "Sender" } else { "Receiver" };
            let mut sub = String::new();
            for s in self.subcodes {
                sub.push_str(&format!("<env:Subcode><env:Value>ter:{s}</env:Value>"));
            }
            for _ in self.subcodes {
                sub.push_str("</env:Subcode>");
            }
            format!(
                "<env:Fault><env:Code><env:Value>env:{code}</env:Value>{sub}</env:Code>\
                 <env:Reason><env:Text xml:lang=\"en\">{}</env:Text></env:Reason></env:Fault>",
                esc(&self.reason)
            )
        };
        envelope(soap11, &body)
    }
}

/// A response body, SOAP envelope included.
pub fn envelope(soap11: bool, body: &str) -> String {
    let env = if soap11 { NS_SOAP11 } else { NS_SOAP12 };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <env:Envelope xmlns:env=\"{env}\" xmlns:tds=\"{NS_DEVICE}\" xmlns:trt=\"{NS_MEDIA}\" \
         xmlns:tt=\"{NS_SCHEMA}\" xmlns:ter=\"{NS_ERROR}\"><env:Body>{body}</env:Body></env:Envelope>"
    )
}

/// The answer to an operation the caller was allowed to make: the body of
/// a 200 response, or a fault.
pub fn respond(req: &Request, cx: &Context<'_>) -> Result<String, Fault> {
    let name = req.operation.name.as_str();
    let body = match &req.operation.service {
        Service::Device => device(req, name, cx)?,
        Service::Media => media(req, name, cx)?,
        Service::Other(_) => return Err(Fault::not_supported(name)),
    };
    Ok(envelope(req.soap11, &body))
}

fn device(req: &Request, name: &str, cx: &Context<'_>) -> Result<String, Fault> {
    Ok(match name {
        "GetSystemDateAndTime" => {
            let t = Utc::from_unix_us(cx.now_us);
            let when = format!(
                "<tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time>\
                 <tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date>",
                t.hour, t.minute, t.second, t.year, t.month, t.day
            );
            // The device keeps UTC (the image has no time zone setting).
            format!(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>\
                 <tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>\
                 <tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>\
                 <tt:UTCDateTime>{when}</tt:UTCDateTime><tt:LocalDateTime>{when}</tt:LocalDateTime>\
                 </tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            )
        }
        "GetDeviceInformation" => {
            let d = cx.device;
            format!(
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>{}</tds:Manufacturer>\
                 <tds:Model>{}</tds:Model><tds:FirmwareVersion>{}</tds:FirmwareVersion>\
                 <tds:SerialNumber>{}</tds:SerialNumber><tds:HardwareId>{}</tds:HardwareId>\
                 </tds:GetDeviceInformationResponse>",
                esc(&d.manufacturer),
                esc(&d.model),
                esc(&d.firmware),
                esc(&d.serial),
                esc(&d.hardware)
            )
        }
        "GetCapabilities" => {
            let cat = req.param("Category").unwrap_or("All");
            let dev = format!(
                "<tt:Device><tt:XAddr>{}</tt:XAddr>\
                 <tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>\
                 <tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>\
                 <tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>false</tt:DiscoveryBye>\
                 <tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup>\
                 <tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>\
                 <tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tt:SupportedVersions></tt:System>\
                 <tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>\
                 <tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration><tt:AccessPolicyConfig>false</tt:AccessPolicyConfig>\
                 <tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>\
                 <tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken></tt:Security></tt:Device>",
                esc(cx.device_xaddr)
            );
            let media = format!(
                "<tt:Media><tt:XAddr>{}</tt:XAddr><tt:StreamingCapabilities>\
                 <tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>\
                 <tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>",
                esc(cx.media_xaddr)
            );
            let caps = match cat {
                "All" => format!("{dev}{media}"),
                "Device" => dev,
                "Media" => media,
                _ => {
                    return Err(Fault {
                        sender: false,
                        subcodes: &["ActionNotSupported", "NoSuchService"],
                        reason: format!("no {cat} service (Device and Media are offered)"),
                    })
                }
            };
            format!(
                "<tds:GetCapabilitiesResponse><tds:Capabilities>{caps}</tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        }
        "GetServices" => {
            let with_caps = req.param("IncludeCapability") == Some("true");
            let service = |ns: &str, xaddr: &str, caps: String| {
                let caps = if with_caps {
                    format!("<tds:Capabilities>{caps}</tds:Capabilities>")
                } else {
                    String::new()
                };
                format!(
                    "<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{}</tds:XAddr>{caps}\
                     <tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>",
                    esc(xaddr)
                )
            };
            format!(
                "<tds:GetServicesResponse>{}{}</tds:GetServicesResponse>",
                service(NS_DEVICE, cx.device_xaddr, device_caps()),
                service(NS_MEDIA, cx.media_xaddr, media_caps())
            )
        }
        "GetServiceCapabilities" => format!(
            "<tds:GetServiceCapabilitiesResponse>{}</tds:GetServiceCapabilitiesResponse>",
            device_caps()
        ),
        "GetWsdlUrl" => "<tds:GetWsdlUrlResponse><tds:WsdlUrl>https://www.onvif.org/profiles/</tds:WsdlUrl></tds:GetWsdlUrlResponse>".into(),
        _ => return Err(Fault::not_supported(name)),
    })
}

fn device_caps() -> String {
    "<tds:Capabilities><tds:Network IPFilter=\"false\" ZeroConfiguration=\"false\" IPVersion6=\"false\" \
     DynDNS=\"false\" NTP=\"0\"/><tds:Security UsernameToken=\"true\" HttpDigest=\"false\" TLS1.2=\"false\"/>\
     <tds:System DiscoveryResolve=\"false\" DiscoveryBye=\"false\" RemoteDiscovery=\"false\" \
     SystemBackup=\"false\" SystemLogging=\"false\" FirmwareUpgrade=\"false\"/></tds:Capabilities>"
        .into()
}

fn media_caps() -> String {
    "<trt:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\">\
     <trt:ProfileCapabilities MaximumNumberOfProfiles=\"1\"/>\
     <trt:StreamingCapabilities RTPMulticast=\"false\" RTP_TCP=\"true\" RTP_RTSP_TCP=\"true\" \
     NonAggregateControl=\"false\" NoRTSPStreaming=\"false\"/></trt:Capabilities>"
        .into()
}

/// The profile token an operation names; an unknown one is a fault.
fn profile_token(req: &Request) -> Result<(), Fault> {
    match req.param("ProfileToken") {
        Some(PROFILE) => Ok(()),
        Some(other) => Err(Fault::no_profile(other)),
        None => Err(Fault::bad_request("ProfileToken is missing")),
    }
}

fn media(req: &Request, name: &str, cx: &Context<'_>) -> Result<String, Fault> {
    Ok(match name {
        "GetProfiles" => format!(
            "<trt:GetProfilesResponse>{}</trt:GetProfilesResponse>",
            profile(cx, "trt:Profiles")
        ),
        "GetProfile" => {
            profile_token(req)?;
            format!(
                "<trt:GetProfileResponse>{}</trt:GetProfileResponse>",
                profile(cx, "trt:Profile")
            )
        }
        "GetStreamUri" => {
            profile_token(req)?;
            if let Some(s) = req.param("Stream") {
                if s != "RTP-Unicast" {
                    return Err(Fault::bad_setup(s));
                }
            }
            // RTSP: RTP over the RTSP connection or UDP; "UDP" and "TCP"
            // name the RTP transport the client will pick in SETUP. RTSP
            // over HTTP is not offered.
            match req.param("Protocol") {
                None | Some("RTSP" | "UDP" | "TCP") => {}
                Some(p) => return Err(Fault::bad_setup(p)),
            }
            format!(
                "<trt:GetStreamUriResponse>{}</trt:GetStreamUriResponse>",
                media_uri(cx.rtsp_uri)
            )
        }
        "GetSnapshotUri" => {
            profile_token(req)?;
            format!(
                "<trt:GetSnapshotUriResponse>{}</trt:GetSnapshotUriResponse>",
                media_uri(cx.snapshot_uri)
            )
        }
        "GetServiceCapabilities" => format!(
            "<trt:GetServiceCapabilitiesResponse>{}</trt:GetServiceCapabilitiesResponse>",
            media_caps()
        ),
        "GetVideoSources" => {
            let s = cx.stream;
            format!(
                "<trt:GetVideoSourcesResponse><trt:VideoSources token=\"{VIDEO_SOURCE}\">\
                 <tt:Framerate>{}</tt:Framerate><tt:Resolution><tt:Width>{}</tt:Width>\
                 <tt:Height>{}</tt:Height></tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>",
                s.fps, s.width, s.height
            )
        }
        _ => return Err(Fault::not_supported(name)),
    })
}

fn media_uri(uri: &str) -> String {
    format!(
        "<trt:MediaUri><tt:Uri>{}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>\
         <tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>",
        esc(uri)
    )
}

/// The one profile: the hub's H.264 stream as it is.
fn profile(cx: &Context<'_>, tag: &str) -> String {
    let s = cx.stream;
    let gop = if s.gop > 0 { s.gop } else { s.fps.max(1) * 2 };
    format!(
        "<{tag} token=\"{PROFILE}\" fixed=\"true\"><tt:Name>{PROFILE}</tt:Name>\
         <tt:VideoSourceConfiguration token=\"{VIDEO_SOURCE}\"><tt:Name>{VIDEO_SOURCE}</tt:Name>\
         <tt:UseCount>1</tt:UseCount><tt:SourceToken>{VIDEO_SOURCE}</tt:SourceToken>\
         <tt:Bounds x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\"/></tt:VideoSourceConfiguration>\
         <tt:VideoEncoderConfiguration token=\"h264\"><tt:Name>h264</tt:Name><tt:UseCount>1</tt:UseCount>\
         <tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height>\
         </tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit>\
         <tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{kbps}</tt:BitrateLimit></tt:RateControl>\
         <tt:H264><tt:GovLength>{gop}</tt:GovLength><tt:H264Profile>High</tt:H264Profile></tt:H264>\
         <tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>\
         <tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>\
         <tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration></{tag}>",
        w = s.width,
        h = s.height,
        fps = s.fps,
        kbps = s.bitrate_kbps,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::parse;

    fn req(ns: &str, op: &str, inner: &str) -> Request {
        parse(
            format!(
                "<e:Envelope xmlns:e=\"{NS_SOAP12}\"><e:Body><o:{op} xmlns:o=\"{ns}\" \
                 xmlns:t=\"{NS_SCHEMA}\">{inner}</o:{op}></e:Body></e:Envelope>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn cx(device: &DeviceInfo) -> Context<'_> {
        Context {
            device,
            stream: StreamInfo {
                width: 1280,
                height: 720,
                fps: 30,
                bitrate_kbps: 2000,
                gop: 60,
            },
            device_xaddr: "http://10.0.0.2/onvif/device_service",
            media_xaddr: "http://10.0.0.2/onvif/media_service",
            rtsp_uri: "rtsp://10.0.0.2:8554/stream",
            snapshot_uri: "http://10.0.0.2/snapshot.jpg?token=a&b",
            now_us: crate::wsse::parse_time("2026-12-07T15:04:05Z").unwrap(),
        }
    }

    fn dev() -> DeviceInfo {
        DeviceInfo {
            manufacturer: "pinhole".into(),
            model: "<Pi & co>".into(),
            firmware: "0.1.0".into(),
            serial: "abc".into(),
            hardware: "rpi4".into(),
        }
    }

    /// Each answer must be XML a reader takes (quick-xml, strictly).
    fn well_formed(s: &str) {
        let mut r = quick_xml::Reader::from_str(s);
        let mut depth = 0i32;
        loop {
            match r.read_event().unwrap() {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn pre_auth_operations() {
        assert_eq!(
            access(&req(NS_DEVICE, "GetSystemDateAndTime", "")),
            Access::PreAuth
        );
        assert_eq!(
            access(&req(NS_DEVICE, "GetCapabilities", "")),
            Access::PreAuth
        );
        assert_eq!(access(&req(NS_DEVICE, "GetServices", "")), Access::PreAuth);
        assert_eq!(
            access(&req(NS_DEVICE, "GetDeviceInformation", "")),
            Access::Viewer
        );
        assert_eq!(access(&req(NS_MEDIA, "GetProfiles", "")), Access::Viewer);
        assert_eq!(access(&req(NS_MEDIA, "GetStreamUri", "")), Access::Viewer);
        // The media service's capabilities are not PRE_AUTH (only the device's).
        assert_eq!(
            access(&req(NS_MEDIA, "GetServiceCapabilities", "")),
            Access::Viewer
        );
    }

    #[test]
    fn answers() {
        let d = dev();
        let cx = cx(&d);
        let ok = |ns, op, inner| {
            let s = respond(&req(ns, op, inner), &cx).unwrap();
            well_formed(&s);
            s
        };
        let t = ok(NS_DEVICE, "GetSystemDateAndTime", "");
        assert!(t.contains("<tt:UTCDateTime><tt:Time><tt:Hour>15</tt:Hour><tt:Minute>4</tt:Minute><tt:Second>5</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>12</tt:Month><tt:Day>7</tt:Day>"), "{t}");
        let i = ok(NS_DEVICE, "GetDeviceInformation", "");
        assert!(
            i.contains("<tds:Model>&lt;Pi &amp; co&gt;</tds:Model>"),
            "{i}"
        );
        let c = ok(NS_DEVICE, "GetCapabilities", "<o:Category>All</o:Category>");
        assert!(c.contains("<tt:Media><tt:XAddr>http://10.0.0.2/onvif/media_service</tt:XAddr>"));
        assert!(!ok(
            NS_DEVICE,
            "GetCapabilities",
            "<o:Category>Device</o:Category>"
        )
        .contains("tt:Media"));
        let s = ok(
            NS_DEVICE,
            "GetServices",
            "<o:IncludeCapability>false</o:IncludeCapability>",
        );
        assert!(s.contains(NS_MEDIA) && !s.contains("SnapshotUri"));
        assert!(ok(
            NS_DEVICE,
            "GetServices",
            "<o:IncludeCapability>true</o:IncludeCapability>"
        )
        .contains("SnapshotUri=\"true\""));
        let p = ok(NS_MEDIA, "GetProfiles", "");
        assert!(p.contains("<trt:Profiles token=\"main\" fixed=\"true\">"));
        assert!(p.contains("<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>1280</tt:Width><tt:Height>720</tt:Height>"));
        assert!(p.contains("<tt:GovLength>60</tt:GovLength>"));
        let u = ok(NS_MEDIA, "GetStreamUri", "<o:StreamSetup><t:Stream>RTP-Unicast</t:Stream><t:Transport><t:Protocol>RTSP</t:Protocol></t:Transport></o:StreamSetup><o:ProfileToken>main</o:ProfileToken>");
        assert!(
            u.contains("<tt:Uri>rtsp://10.0.0.2:8554/stream</tt:Uri>"),
            "{u}"
        );
        let j = ok(
            NS_MEDIA,
            "GetSnapshotUri",
            "<o:ProfileToken>main</o:ProfileToken>",
        );
        assert!(
            j.contains("<tt:Uri>http://10.0.0.2/snapshot.jpg?token=a&amp;b</tt:Uri>"),
            "{j}"
        );
        assert!(ok(NS_MEDIA, "GetServiceCapabilities", "").contains("SnapshotUri=\"true\""));
        assert!(ok(NS_MEDIA, "GetVideoSources", "").contains("<tt:Width>1280</tt:Width>"));
        assert!(ok(
            NS_MEDIA,
            "GetProfile",
            "<o:ProfileToken>main</o:ProfileToken>"
        )
        .contains("<trt:Profile token"));
    }

    #[test]
    fn faults() {
        let d = dev();
        let cx = cx(&d);
        let fault = |ns, op, inner| respond(&req(ns, op, inner), &cx).unwrap_err();
        let f = fault(NS_DEVICE, "GetNetworkInterfaces", "");
        assert_eq!(f.status(), 500);
        assert!(
            f.reason.contains("not implemented"),
            "Home Assistant's test"
        );
        let env = f.envelope(false);
        well_formed(&env);
        assert!(env.contains("<env:Value>env:Receiver</env:Value><env:Subcode><env:Value>ter:ActionNotSupported</env:Value></env:Subcode>"), "{env}");
        well_formed(&f.envelope(true));
        assert!(f
            .envelope(true)
            .contains("<faultcode>env:Server</faultcode>"));
        assert_eq!(
            fault("http://www.onvif.org/ver20/ptz/wsdl", "GetNodes", "").subcodes,
            &["ActionNotSupported"]
        );
        let f = fault(
            NS_MEDIA,
            "GetStreamUri",
            "<o:ProfileToken>other</o:ProfileToken>",
        );
        assert_eq!(
            (f.status(), f.subcodes),
            (400, &["InvalidArgVal", "NoProfile"][..])
        );
        let two = f.envelope(false);
        well_formed(&two);
        assert!(two.contains("ter:NoProfile</env:Value></env:Subcode></env:Subcode>"));
        assert_eq!(fault(NS_MEDIA, "GetStreamUri", "").status(), 400);
        let multicast = "<o:StreamSetup><t:Stream>RTP-Multicast</t:Stream></o:StreamSetup><o:ProfileToken>main</o:ProfileToken>";
        assert_eq!(
            fault(NS_MEDIA, "GetStreamUri", multicast).subcodes,
            &["InvalidArgVal", "InvalidStreamSetup"]
        );
        let http = "<o:StreamSetup><t:Transport><t:Protocol>HTTP</t:Protocol></t:Transport></o:StreamSetup><o:ProfileToken>main</o:ProfileToken>";
        assert_eq!(fault(NS_MEDIA, "GetStreamUri", http).status(), 400);
        assert_eq!(
            fault(NS_DEVICE, "GetCapabilities", "<o:Category>PTZ</o:Category>").status(),
            500
        );
        let na = Fault::not_authorized().envelope(false);
        well_formed(&na);
        assert!(na.contains("ter:NotAuthorized"));
    }
}
