//! Sans-IO media for Hotline: in-band DTMF detection, prompt loading/caching/sequencing and
//! Russian number phrases. Nothing here opens sockets, spawns tasks or reads the clock.

pub mod goertzel;
pub mod numbers_ru;
pub mod prompts;
pub mod resample;
