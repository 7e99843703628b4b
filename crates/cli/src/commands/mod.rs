//! One file per subcommand.

pub mod act;
pub mod backends;
pub mod bench;
pub mod dump;
pub mod generate;
pub mod parity;
pub mod process;
pub mod serve;

/// `--image` and `--prompt`: one PaliGemma input (shared by generate, dump and process).
#[derive(Debug, Clone, clap::Args)]
pub struct ImagePrompt {
    /// Image file: JPEG, PNG, BMP or WebP, decoded exactly as Pillow's
    /// `Image.open(f).convert("RGB")` (EXIF orientation is not applied, as in Pillow), then
    /// resized with Pillow's BICUBIC as the model's processor does. GIF/TIFF are refused.
    #[arg(long)]
    pub image: std::path::PathBuf,
    /// Prompt, e.g. "caption en", "detect cat", "answer en what is on the table?".
    #[arg(long)]
    pub prompt: String,
}

impl ImagePrompt {
    /// The prompt, refused when empty.
    pub fn prompt(&self) -> anyhow::Result<&str> {
        if self.prompt.trim().is_empty() {
            anyhow::bail!("--prompt is empty: give the task text, e.g. \"caption en\"");
        }
        Ok(&self.prompt)
    }
}
