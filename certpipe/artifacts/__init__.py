"""Reading and checking certificates, keys, CSRs, PKCS#7 and PKCS#12 in-process."""
