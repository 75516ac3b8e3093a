#!/bin/sh
# Prints N subscribers (default 200) from 001010000010000 for load-registration.yaml, in
# imslab's CSV format: imslab subscriber import <(scenarios/library/load-subscribers.sh 1000)
n=${1:-200}
echo "imsi,k,opc,amf,impus"
i=0
while [ "$i" -lt "$n" ]; do
  imsi=$(printf '0010100000%05d' $((10000 + i)))
  echo "$imsi,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf,8000,sip:$imsi@ims.mnc001.mcc001.3gppnetwork.org"
  i=$((i + 1))
done
