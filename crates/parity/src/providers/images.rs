//! `<image>.resized_uint8` and `<image>.pixel_values`: the image processor on the case's PNGs.
//! Pixel values travel through the selected backend (host → device → host), the path the model
//! input takes.

use std::path::PathBuf;

use burn::prelude::Backend;

use super::{Produced, Request};
use crate::tensor::HostTensor;

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

pub fn provide<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    for name in req.wanted {
        let Some((stem, leaf)) = name.rsplit_once('.') else { continue };
        if !matches!(leaf, "resized_uint8" | "pixel_values") {
            continue;
        }
        let Some(path) = image_for(req, stem) else { continue };
        let result = path.and_then(|p| {
            let processor = req.case.processor()?;
            let img = processor.process_image(&p).map_err(|e| e.to_string())?;
            Ok(match leaf {
                "resized_uint8" => HostTensor::ints(vec![img.height, img.width, 3], &img.resized),
                _ => HostTensor::from_tensor(img.to_tensor::<B>(device))?,
            })
        });
        req.put(out, name.clone(), result);
    }
}

/// The image behind a tensor prefix: `inputs/<prefix>.<ext>`, or the image of prompt `p<N>`.
/// `None` when the prefix names no image (another provider's tensor).
fn image_for(req: &Request<'_>, stem: &str) -> Option<Result<PathBuf, String>> {
    for ext in IMAGE_EXTENSIONS {
        if let Ok(p) = req.case.input_path(&format!("inputs/{stem}.{ext}")) {
            return Some(Ok(p));
        }
    }
    let prompt_image = req.case.value(&format!("{stem}.prompt"))?.get("image")?.as_str()?;
    Some(req.case.input_path(prompt_image))
}
