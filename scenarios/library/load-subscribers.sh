#!/bin/sh
# Prints N subscribers (default 200) from IMSI 0010100000<FIRST> (FIRST default 10000) in
# imslab's CSV format, for the load scenarios:
#   load-registration.yaml: imslab subscriber import <(scenarios/library/load-subscribers.sh 1000)
#   load-calls.yaml: ... load-subscribers.sh 200 20000 (callers), load-subscribers.sh 200 30000 (callees)
n=${1:-200}
first=${2:-10000}
echo "imsi,k,opc,amf,impus"
i=0
while [ "$i" -lt "$n" ]; do
  imsi=$(printf '0010100000%05d' $((first + i)))
  echo "$imsi,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf,8000,sip:$imsi@ims.mnc001.mcc001.3gppnetwork.org"
  i=$((i + 1))
done
