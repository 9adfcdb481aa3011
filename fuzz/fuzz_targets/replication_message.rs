#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pgwal::replication::fuzzing::server_messages(data));
