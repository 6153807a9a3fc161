//! Signing keys made in the test (ES256, EdDSA, RS256) with their public JWKs, and JWTs signed with them:
//! for client assertions and identity providers' assertions.
use aws_lc_rs::encoding::AsDer;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::b64;

pub struct Signer {
    pub key: EncodingKey,
    pub alg: Algorithm,
    pub kid: String,
    pub jwk: Value,
}

pub fn es256(kid: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": kid, "use": "sig"});
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    Signer { key, alg: Algorithm::ES256, kid: kid.into(), jwk }
}

pub fn ed25519(kid: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw()), "kid": kid, "alg": "EdDSA"});
    let key = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    Signer { key, alg: Algorithm::EdDSA, kid: kid.into(), jwk }
}

pub fn rs256(kid: &str) -> Signer {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der.as_ref())
    );
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut jwk =
        serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    Signer { key, alg: Algorithm::RS256, kid: kid.into(), jwk }
}

pub fn sign(signer: &Signer, claims: &Value) -> String {
    sign_typed(signer, None, claims)
}

/// [`sign`] with a `typ` header (`oauth-id-jag+jwt` for an ID-JAG).
pub fn sign_typed(signer: &Signer, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = Some(signer.kid.clone());
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &signer.key).unwrap()
}
