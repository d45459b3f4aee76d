//! What we accept from a WHEP client, checked before any ICE work: the SDP
//! offer (POST) and the trickle ICE fragment (PATCH). Pure text handling.

use crate::WebrtcError;

/// Offers are a few KB; a browser's with every codec is under 10 KB.
pub const MAX_SDP: usize = 32 * 1024;

/// A checked offer, ready for str0m.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The SDP, with every `sendrecv` section turned `recvonly` (we only
    /// send; Mainsail and Fluidd offer `sendrecv`).
    pub sdp: String,
    /// The client's ICE username fragment (to tell trickle from a restart).
    pub ice_ufrag: Option<String>,
}

/// Checks an offer: SDP text, at least one video section offering H.264
/// (`a=rtpmap:<pt> H264/90000`). Audio sections are fine (answered as the
/// stack can: Opus accepted, nothing sent until the stream has audio).
pub fn check_offer(sdp: &str) -> Result<Offer, WebrtcError> {
    if sdp.len() > MAX_SDP {
        return Err(WebrtcError::BadOffer(format!(
            "{} bytes, more than {MAX_SDP}",
            sdp.len()
        )));
    }
    if !sdp.trim_start().starts_with("v=0") {
        return Err(WebrtcError::BadOffer("does not start with v=0".into()));
    }
    let mut video_sections = 0;
    let mut h264 = false;
    let mut in_video = false;
    let mut ice_ufrag = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video ");
            video_sections += usize::from(in_video);
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let codec = rest.split_once(' ').map(|(_, c)| c).unwrap_or("");
            if in_video && codec.to_ascii_uppercase().starts_with("H264/90000") {
                h264 = true;
            }
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ice_ufrag.get_or_insert_with(|| u.trim().to_owned());
        }
    }
    if video_sections == 0 {
        return Err(WebrtcError::NoH264("no m=video section".into()));
    }
    if !h264 {
        return Err(WebrtcError::NoH264(
            "the video section offers no H264/90000".into(),
        ));
    }
    // We never receive media: answer a two-way offer as one-way.
    let sdp = sdp
        .split_inclusive('\n')
        .map(|l| {
            if l.trim_end() == "a=sendrecv" {
                l.replacen("a=sendrecv", "a=recvonly", 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    Ok(Offer { sdp, ice_ufrag })
}

/// Whether an SDP (our answer) has a live video section (port not 0) with
/// H.264 in it.
pub fn has_live_h264_video(sdp: &str) -> bool {
    let mut in_live_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split(' ');
            in_live_video = parts.next() == Some("video") && parts.next() != Some("0");
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let codec = rest.split_once(' ').map(|(_, c)| c).unwrap_or("");
            if in_live_video && codec.to_ascii_uppercase().starts_with("H264/90000") {
                return true;
            }
        }
    }
    false
}

/// A trickle ICE fragment (RFC 8840, `application/trickle-ice-sdpfrag`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    /// `candidate:…` attribute values, without the `a=`.
    pub candidates: Vec<String>,
    pub end_of_candidates: bool,
}

/// Parses a fragment. Lines we do not use (`m=`, `a=mid:`) are skipped.
pub fn parse_fragment(text: &str) -> Result<Fragment, WebrtcError> {
    if text.len() > MAX_SDP {
        return Err(WebrtcError::BadFragment("too long".into()));
    }
    let mut f = Fragment::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            f.ice_ufrag = Some(u.to_owned());
        } else if let Some(p) = line.strip_prefix("a=ice-pwd:") {
            f.ice_pwd = Some(p.to_owned());
        } else if let Some(c) = line.strip_prefix("a=candidate:") {
            f.candidates.push(format!("candidate:{c}"));
        } else if line == "a=end-of-candidates" {
            f.end_of_candidates = true;
        } else if !(line.starts_with("m=") || line.starts_with("a=") || line.starts_with("c=")) {
            return Err(WebrtcError::BadFragment(format!(
                "unexpected line '{}'",
                line.chars().take(60).collect::<String>()
            )));
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=sendrecv\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n\
        a=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn an_offer_with_h264_video_is_taken_and_made_one_way() {
        let o = check_offer(CHROME_LIKE).unwrap();
        assert_eq!(o.ice_ufrag.as_deref(), Some("abcd"));
        assert!(!o.sdp.contains("a=sendrecv"));
        assert_eq!(o.sdp.matches("a=recvonly\r\n").count(), 2);
        assert_eq!(o.sdp.len(), CHROME_LIKE.len());
        assert!(has_live_h264_video(CHROME_LIKE));
        assert!(!has_live_h264_video(
            &CHROME_LIKE.replace("m=video 9", "m=video 0")
        ));
    }

    #[test]
    fn offers_without_h264_video_or_not_sdp_are_refused() {
        let vp8 = CHROME_LIKE.replace("a=rtpmap:102 H264/90000\r\n", "");
        assert!(matches!(check_offer(&vp8), Err(WebrtcError::NoH264(_))));
        // H264 in the audio section does not count.
        let audio_only = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert!(matches!(
            check_offer(audio_only),
            Err(WebrtcError::NoH264(_))
        ));
        assert!(matches!(
            check_offer("hello"),
            Err(WebrtcError::BadOffer(_))
        ));
        let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(10_000));
        assert!(matches!(check_offer(&huge), Err(WebrtcError::BadOffer(_))));
        assert_eq!(check_offer("hello").unwrap_err().status(), 400);
        assert_eq!(check_offer(&vp8).unwrap_err().status(), 406);
    }

    #[test]
    fn mainsails_fragment_parses() {
        // The shape Mainsail's WebrtcMediaMTX sends: its own ufrag/pwd, then
        // per m-line a mid and candidates.
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
            a=candidate:1 1 udp 2122260223 192.168.1.5 54321 typ host generation 0\r\n";
        let f = parse_fragment(frag).unwrap();
        assert_eq!(f.ice_ufrag.as_deref(), Some("abcd"));
        assert_eq!(f.candidates.len(), 1);
        assert!(f.candidates[0].starts_with("candidate:1 1 udp"));
        assert!(parse_fragment("garbage\r\n").is_err());
        assert!(
            parse_fragment("a=end-of-candidates\r\n")
                .unwrap()
                .end_of_candidates
        );
    }
}
