#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod bmp;
mod decode;
mod error;
mod jpeg;
mod limits;
mod png;
pub mod resize;
mod rgb_image;
mod via_image;
mod webp;

pub use decode::Format;
pub use error::{Error, Result};
pub use limits::{Limits, PILLOW_MAX_IMAGE_PIXELS};
pub use rgb_image::RgbImage;
