//! The HTML report's parts: figures inlined as data URIs (the page needs no network), the
//! page's frame and style, and the check the browser test reads.

use std::path::Path;

use crate::esc;

/// Standard base64 (RFC 4648, with padding).
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                s.push(T[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// An inlined figure, or nothing when the file is absent.
pub fn figure(path: &Path, caption: &str) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        _ => "image/svg+xml",
    };
    format!(
        "<figure><img alt=\"{}\" src=\"data:{mime};base64,{}\"><figcaption>{}</figcaption></figure>\n",
        esc(caption),
        b64(&bytes),
        esc(caption)
    )
}

pub const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#f3f3f3}figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:13px}.warn{color:#a00}.note{color:#555;font-size:13px}pre{background:#f6f6f6;padding:8px;overflow:auto}";

/// Inline check, read by the browser test: every image decoded, no script error.
pub const CHECK: &str = "<script>var errs=0;window.addEventListener('error',function(){errs++;document.body.setAttribute('data-errors',errs);},true);window.addEventListener('load',function(){var im=document.images,ok=0;for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}document.body.setAttribute('data-images',ok+'/'+im.length);document.body.setAttribute('data-errors',errs);});</script>";

/// A whole page: `title` in the head and under the heading, `body` as it is.
pub fn page(title: &str, version: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cardiaffect report — {}</title><style>{STYLE}</style></head><body><h1>cardiaffect report</h1><p class=\"note\">{} · cardiaffect {version} · everything on this page is inlined (no network).</p>\n{body}{CHECK}</body></html>\n",
        esc(title),
        esc(title),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::b64(i.as_bytes()), o);
        }
    }
}
