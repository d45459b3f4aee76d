//! Text into XML.

/// `s` escaped for element text and attribute values.
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}
