//! A new stream generation: when a keyframe's parameter sets or the set of
//! tracks change, the video track, the multi-track init segment and the
//! [`Stream`] viewers read are rebuilt here, once.

use std::sync::Arc;

use pinhole_media::fmp4::{self, InitTrack};
use pinhole_media::{h264, AccessUnit, Codec};

use crate::{State, Stream, Track, VIDEO};

pub(crate) fn update_stream(st: &mut State, au: &AccessUnit) -> Result<(), String> {
    let params = h264::find_parameter_sets(&au.data);
    let new_video = match (params, &st.video) {
        (None, None) => return Err("no SPS/PPS in the first keyframe".into()),
        // Parameter sets unchanged; sources normally repeat them.
        (None, Some(_)) => None,
        (Some((sps, pps)), Some(cur)) if matches!(&cur.codec, Codec::H264(i) if i.sps == sps && i.pps == pps) => {
            None
        }
        (Some((sps, pps)), _) => Some(h264::stream_info(sps, pps).map_err(|e| e.to_string())?),
    };
    if let Some(info) = new_video {
        st.video_generation += 1;
        tracing::info!(
            width = info.width,
            height = info.height,
            codec = %info.codec,
            generation = st.video_generation,
            "stream parameters"
        );
        st.video = Some(Arc::new(Track {
            id: VIDEO,
            codec: Codec::H264(info),
            generation: st.video_generation,
        }));
    } else if !st.tracks_changed {
        return Ok(());
    }
    let Some(video) = st.video.clone() else {
        return Ok(());
    };
    let Codec::H264(info) = &video.codec else {
        return Ok(());
    };
    st.tracks_changed = false;
    st.generation += 1;

    let video_init = match (&st.stream, new_video_needed(st, &video)) {
        (Some(cur), false) => cur.video_init.clone(),
        _ => fmp4::init_segment(info),
    };
    let mut tracks = vec![video.clone()];
    tracks.extend(
        st.others
            .iter()
            .filter(|t| t.track.codec.in_fmp4())
            .map(|t| t.track.clone()),
    );
    let init = if tracks.len() == 1 {
        video_init.clone()
    } else {
        let list: Vec<InitTrack> = tracks
            .iter()
            .map(|t| InitTrack {
                id: t.id,
                codec: &t.codec,
            })
            .collect();
        match fmp4::try_init_segment_tracks(&list) {
            Ok(init) => init,
            Err(e) => {
                // Keep the picture going: the other tracks wait for usable
                // parameters.
                tracing::warn!(error = %e, "cannot describe the other tracks; video only");
                tracks.truncate(1);
                video_init.clone()
            }
        }
    };
    st.stream = Some(Arc::new(Stream {
        info: info.clone(),
        generation: st.generation,
        init,
        tracks,
        video_init,
        video_generation: video.generation,
    }));
    Ok(())
}

/// Whether the video-only init segment must be rebuilt for `video`.
fn new_video_needed(st: &State, video: &Track) -> bool {
    st.stream
        .as_ref()
        .is_none_or(|s| s.video_generation != video.generation)
}
