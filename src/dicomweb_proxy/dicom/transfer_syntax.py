"""Transfer syntaxes (PS3.5 section 10, PS3.6 Annex A) and how the store keeps each one."""

from pydicom import uid

IMPLICIT_VR_LE = uid.ImplicitVRLittleEndian
EXPLICIT_VR_LE = uid.ExplicitVRLittleEndian
EXPLICIT_VR_BE = uid.ExplicitVRBigEndian
DEFLATED_EXPLICIT_VR_LE = uid.DeflatedExplicitVRLittleEndian
JPEG_BASELINE = uid.JPEGBaseline8Bit
JPEG_EXTENDED = uid.JPEGExtended12Bit
JPEG_LOSSLESS = uid.JPEGLossless
JPEG_LOSSLESS_SV1 = uid.JPEGLosslessSV1
JPEG_LS_LOSSLESS = uid.JPEGLSLossless
JPEG_LS_NEAR_LOSSLESS = uid.JPEGLSNearLossless
JPEG_2000_LOSSLESS = uid.JPEG2000Lossless
JPEG_2000 = uid.JPEG2000
JPEG_2000_MC_LOSSLESS = uid.JPEG2000MCLossless
JPEG_2000_MC = uid.JPEG2000MC
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS = uid.RLELossless

#: Syntaxes whose pixel data is not encapsulated: frames are plain sample arrays.
NATIVE = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE})

#: Encapsulated syntaxes that compress without loss: the store transcodes them to HTJ2K.
LOSSLESS_ENCAPSULATED = frozenset(
    {
        RLE_LOSSLESS,
        JPEG_LOSSLESS,
        JPEG_LOSSLESS_SV1,
        JPEG_LS_LOSSLESS,
        JPEG_2000_LOSSLESS,
        JPEG_2000_MC_LOSSLESS,
    }
)

#: HTJ2K syntaxes: already what the store keeps, so their bytes are kept as they are.
HTJ2K_FAMILY = frozenset({HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K})

#: Video syntaxes: the whole pixel data is one stream, stored as one frame blob.
VIDEO = frozenset(
    {
        uid.MPEG2MPML,
        uid.MPEG2MPMLF,
        uid.MPEG2MPHL,
        uid.MPEG2MPHLF,
        uid.MPEG4HP41,
        uid.MPEG4HP41F,
        uid.MPEG4HP41BD,
        uid.MPEG4HP41BDF,
        uid.MPEG4HP422D,
        uid.MPEG4HP422DF,
        uid.MPEG4HP423D,
        uid.MPEG4HP423DF,
        uid.MPEG4HP42STEREO,
        uid.MPEG4HP42STEREOF,
        uid.HEVCMP51,
        uid.HEVCM10P51,
    }
)


def is_encapsulated(transfer_syntax_uid: str) -> bool:
    return transfer_syntax_uid not in NATIVE


def keeps_original_bytes(transfer_syntax_uid: str) -> bool:
    """Whether the store keeps frames of this syntax as they are (lossy, video, HTJ2K)."""
    return is_encapsulated(transfer_syntax_uid) and (
        transfer_syntax_uid not in LOSSLESS_ENCAPSULATED
    )
