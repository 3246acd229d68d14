//! The numcodecs `lz4` compressor, which zarrs does not have: OpenHCS offers it for the Zarr
//! stores it writes (`ZarrCompressor.LZ4`, `numcodecs.LZ4(acceleration=level)`), so hcs reads
//! such a store instead of refusing it.
//!
//! A chunk is the uncompressed size as a 4-byte little-endian integer, then one LZ4 block
//! (numcodecs' `lz4.compress`); `lz4_flex` decodes the block. The size in the header is checked
//! against the chunk's size before anything is allocated, so a corrupt or hostile header is an
//! error, not a huge allocation. Registered with zarrs (`inventory`) under the Zarr v2 id `lz4`
//! and the Zarr v3 name `numcodecs.lz4`, as zarrs registers its own codecs. Encoding writes the
//! same format (the acceleration changes speed, not the format, and is kept in the metadata).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use zarrs::array::codec::api::{
    BytesToBytesCodecTraits, Codec, CodecError, CodecMetadataOptions, CodecOptions, CodecPluginV2, CodecPluginV3,
    CodecTraits, CodecTraitsV2, CodecTraitsV3, PartialDecoderCapability, PartialEncoderCapability,
    RecommendedConcurrency,
};
use zarrs::array::{ArrayBytesRaw, BytesRepresentation};
use zarrs::metadata::Configuration;
use zarrs::metadata::v2::MetadataV2;
use zarrs::metadata::v3::MetadataV3;
use zarrs::plugin::{
    ExtensionAliases, ExtensionAliasesConfig, ExtensionNameStatic, PluginCreateError, ZarrVersion, ZarrVersion2,
    ZarrVersion3,
};

/// The numcodecs `lz4` codec.
#[derive(Clone, Debug)]
pub(crate) struct Lz4Codec {
    /// numcodecs' `acceleration` (1 by default): kept for the metadata.
    acceleration: i64,
}

const V2_ID: &str = "lz4";
/// The most bytes numcodecs compresses (`LZ4_MAX_INPUT_SIZE`), so the most a chunk it reads holds.
const MAX_INPUT: usize = 0x7E00_0000;
const V3_NAME: &str = "numcodecs.lz4";

impl Lz4Codec {
    /// The codec a configuration (`{"acceleration": 1}`, or empty) describes.
    fn from_configuration(configuration: Option<&Configuration>) -> Result<Self, PluginCreateError> {
        let acceleration = match configuration.and_then(|c| c.get("acceleration")) {
            None => 1,
            Some(value) => value
                .as_i64()
                .ok_or_else(|| PluginCreateError::Other(format!("lz4: acceleration {value} is not an integer")))?,
        };
        Ok(Self { acceleration })
    }

    fn create(configuration: Option<&Configuration>) -> Result<Codec, PluginCreateError> {
        Ok(Codec::BytesToBytes(Arc::new(Self::from_configuration(configuration)?)))
    }
}

/// The size numcodecs' header gives and the LZ4 block after it.
fn split_header(encoded: &[u8]) -> Result<(usize, &[u8]), CodecError> {
    let (header, block) = encoded.split_first_chunk::<4>().ok_or_else(|| {
        CodecError::Other(format!("lz4: a chunk of {} bytes has no 4-byte size header", encoded.len()))
    })?;
    Ok((u32::from_le_bytes(*header) as usize, block))
}

static ALIASES_V2: LazyLock<RwLock<ExtensionAliasesConfig>> =
    LazyLock::new(|| RwLock::new(ExtensionAliasesConfig::new(V2_ID, vec![], vec![])));
static ALIASES_V3: LazyLock<RwLock<ExtensionAliasesConfig>> =
    LazyLock::new(|| RwLock::new(ExtensionAliasesConfig::new(V3_NAME, vec![], vec![])));

impl ExtensionAliases<ZarrVersion2> for Lz4Codec {
    fn aliases() -> RwLockReadGuard<'static, ExtensionAliasesConfig> {
        ALIASES_V2.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn aliases_mut() -> RwLockWriteGuard<'static, ExtensionAliasesConfig> {
        ALIASES_V2.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ExtensionAliases<ZarrVersion3> for Lz4Codec {
    fn aliases() -> RwLockReadGuard<'static, ExtensionAliasesConfig> {
        ALIASES_V3.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn aliases_mut() -> RwLockWriteGuard<'static, ExtensionAliasesConfig> {
        ALIASES_V3.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ExtensionNameStatic for Lz4Codec {
    const DEFAULT_NAME_FN: fn(ZarrVersion) -> Option<Cow<'static, str>> = |version| {
        let aliases = match version {
            ZarrVersion::V2 => &ALIASES_V2,
            ZarrVersion::V3 => &ALIASES_V3,
        };
        Some(aliases.read().unwrap_or_else(PoisonError::into_inner).default_name.clone())
    };
}

impl CodecTraitsV2 for Lz4Codec {
    fn create(metadata: &MetadataV2) -> Result<Codec, PluginCreateError> {
        Self::create(Some(metadata.configuration()))
    }
}

impl CodecTraitsV3 for Lz4Codec {
    fn create(metadata: &MetadataV3) -> Result<Codec, PluginCreateError> {
        Self::create(metadata.configuration())
    }
}

inventory::submit! {
    CodecPluginV2::new::<Lz4Codec>()
}

inventory::submit! {
    CodecPluginV3::new::<Lz4Codec>()
}

impl CodecTraits for Lz4Codec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn configuration(&self, _version: ZarrVersion, _options: &CodecMetadataOptions) -> Option<Configuration> {
        let mut map = serde_json::Map::new();
        map.insert("acceleration".into(), self.acceleration.into());
        Some(Configuration::from(map))
    }

    fn partial_decoder_capability(&self) -> PartialDecoderCapability {
        PartialDecoderCapability { partial_read: false, partial_decode: false }
    }

    fn partial_encoder_capability(&self) -> PartialEncoderCapability {
        PartialEncoderCapability { partial_encode: false }
    }
}

impl BytesToBytesCodecTraits for Lz4Codec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self as Arc<dyn BytesToBytesCodecTraits>
    }

    fn recommended_concurrency(
        &self,
        _decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        Ok(RecommendedConcurrency::new_maximum(1))
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        if decoded_value.len() > MAX_INPUT {
            return Err(CodecError::Other(format!(
                "lz4: {} bytes are more than numcodecs reads back ({MAX_INPUT})",
                decoded_value.len()
            )));
        }
        Ok(Cow::Owned(lz4_flex::block::compress_prepend_size(&decoded_value)))
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let (size, block) = split_header(&encoded_value)?;
        // The size the header gives must be the chunk's, or within the bound a codec before
        // this one gives: checked before the output is allocated.
        let fits = match decoded_representation {
            BytesRepresentation::FixedSize(n) => size as u64 == *n,
            BytesRepresentation::BoundedSize(n) => size as u64 <= *n,
            BytesRepresentation::UnboundedSize => size <= MAX_INPUT,
        };
        if !fits {
            return Err(CodecError::Other(format!(
                "lz4: the header says {size} bytes where the chunk holds {decoded_representation}"
            )));
        }
        let mut out = vec![0u8; size];
        let written = lz4_flex::block::decompress_into(block, &mut out)
            .map_err(|e| CodecError::Other(format!("lz4: corrupt block: {e}")))?;
        if written != size {
            return Err(CodecError::Other(format!(
                "lz4: the block holds {written} bytes where its header says {size}"
            )));
        }
        Ok(Cow::Owned(out))
    }

    fn encoded_representation(&self, decoded_representation: &BytesRepresentation) -> BytesRepresentation {
        // LZ4's worst case (lz4_flex's `get_maximum_output_size`: 110 % + 20) and the header,
        // with no overflow.
        decoded_representation.size().map_or(BytesRepresentation::UnboundedSize, |size| {
            BytesRepresentation::BoundedSize(size.saturating_add(size / 10).saturating_add(24))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> Lz4Codec {
        Lz4Codec::from_configuration(None).expect("codec")
    }

    #[test]
    fn a_chunk_round_trips_and_a_bad_header_or_block_is_an_error_not_a_panic() {
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| (((i * 7) % 251) as u16).to_le_bytes()).collect();
        let repr = BytesRepresentation::FixedSize(data.len() as u64);
        let options = CodecOptions::default();
        let encoded = codec().encode(Cow::Borrowed(&data), &options).expect("encode").into_owned();
        assert_eq!(u32::from_le_bytes(encoded[..4].try_into().expect("4")) as usize, data.len(), "numcodecs' header");
        let decoded = codec().decode(Cow::Borrowed(&encoded), &repr, &options).expect("decode");
        assert_eq!(&decoded[..], &data[..]);

        let mut huge = encoded.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = codec().decode(Cow::Owned(huge.clone()), &repr, &options).expect_err("a header of 4 GiB");
        assert!(e.to_string().contains("header says"), "{e}");
        let e = codec().decode(Cow::Owned(huge), &BytesRepresentation::UnboundedSize, &options).expect_err("unbounded");
        assert!(e.to_string().contains("header says"), "{e}");
        let bound = BytesRepresentation::BoundedSize(data.len() as u64 + 100);
        assert_eq!(&codec().decode(Cow::Borrowed(&encoded), &bound, &options).expect("within a bound")[..], &data[..]);
        let tight = BytesRepresentation::BoundedSize(data.len() as u64 - 1);
        assert!(codec().decode(Cow::Borrowed(&encoded), &tight, &options).is_err(), "past the bound");
        let most = codec().encoded_representation(&BytesRepresentation::FixedSize(u64::MAX));
        assert_eq!(most, BytesRepresentation::BoundedSize(u64::MAX), "no overflow");
        let worst = lz4_flex::block::get_maximum_output_size(data.len()) as u64 + 4;
        assert!(matches!(codec().encoded_representation(&repr), BytesRepresentation::BoundedSize(n) if n >= worst));
        let e = codec().decode(Cow::Borrowed(&encoded[..encoded.len() / 2]), &repr, &options).expect_err("cut");
        assert!(e.to_string().contains("lz4"), "{e}");
        assert!(codec().decode(Cow::Borrowed(&encoded[..3]), &repr, &options).is_err(), "no header");
    }

    #[test]
    fn the_configuration_is_numcodecs_acceleration() {
        let mut map = serde_json::Map::new();
        map.insert("acceleration".into(), 9.into());
        let c = Lz4Codec::from_configuration(Some(&Configuration::from(map))).expect("codec");
        assert_eq!(c.acceleration, 9);
        let mut bad = serde_json::Map::new();
        bad.insert("acceleration".into(), "fast".into());
        assert!(Lz4Codec::from_configuration(Some(&Configuration::from(bad))).is_err());
        assert_eq!(codec().acceleration, 1);
    }
}
