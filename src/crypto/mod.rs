//! Transforms and key schedule: PRF, prf+, DH groups, SK payload protection, PSK AUTH, CHILD_SA KEYMAT.
