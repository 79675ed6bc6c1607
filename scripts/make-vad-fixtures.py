#!/usr/bin/env python3
"""Generate the voice-activity evaluation set in fixtures/vad/ (issue 11).

Everything is made here, deterministically (fixed seeds), from eSpeak NG utterances and noises
synthesised in plain Python (no numpy), then band-limited like a phone line (250-3400 Hz),
mixed at a known SNR and written as 8 kHz G.711 mu-law WAV: what Twilio sends us.

Output (all in fixtures/vad/):
  turn-<noise>-<snr>db.wav   a caller taking two turns on a noisy line; the first turn has a
                             400 ms mid-sentence pause that must not end it
  barge-<noise>.wav          what comes back from the phone while the agent speaks: our own
                             echo (delayed, attenuated), line noise, coughs, clicks, short
                             backchannels ("uh-huh", "yeah" < 400 ms) and one real interruption
  agent.wav                  the agent's reply that barge-*.wav echo (the level we play)
  sound-*.wav                single clean sounds for the end-to-end tests (no line noise; the
                             simulated caller adds its own): a double cough, a 300 ms "uh-huh",
                             a 1 s interruption ("sounds" only: python3 ... sounds)
  labels.json                ground truth: per 20 ms frame speech labels (from the clean
                             utterances' energy), turns, barge-in events, levels and SNRs

SNR is the active speech level (mean power over speech frames) over the noise level: the
mean power over the whole clip for steady noises (white, pink, car, babble) and over the bursts
themselves for impulsive ones (clicks, coughs), so "a cough at 10 dB" is 10 dB below the
speech. Tools: eSpeak NG and SoX (Debian: apt-get install -y espeak-ng sox).
Run from the repository root:  python3 scripts/make-vad-fixtures.py
"""

import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import wave

RATE = 8000
FRAME = 160  # 20 ms
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "vad")

NOISES = ["white", "pink", "car", "babble", "clicks", "coughs"]
SNRS = [30, 20, 10, 5]
LINE_FLOOR_DBFS = -66.0  # the quiet hiss of a real line under everything

# (text, voice, words per minute) for the caller's turns.
PHRASES = [
    ("I would like to check on my order", "en-us", 165),
    ("it was supposed to arrive on Tuesday", "en-us", 160),
    ("Can you tell me the balance on my account?", "en-gb", 170),
    ("Hello, yes, I am calling about the invoice", "en-us+f3", 160),
    ("the one you sent me last week", "en-us+f3", 165),
    ("Please move my appointment to Friday morning.", "en-gb-scotland", 155),
    ("My card number ends in four five six", "en-029", 150),
    ("and the expiry date is next March", "en-029", 155),
    ("I never received the replacement parts.", "en-us+m3", 170),
    ("Could you send somebody round this afternoon?", "en-gb+f2", 160),
    ("Sorry, what was the reference again", "en-us+f4", 165),
    ("I think there is a mistake on my bill.", "en-gb", 165),
]
BABBLE = [
    ("we went to the market and bought some apples and a bag of flour", "en-gb+f3", 175),
    ("the meeting has been moved to the third floor conference room", "en-us+m2", 170),
    ("did you see the game last night it was absolutely incredible", "en-us+f2", 180),
    ("turn left at the lights and then keep going past the station", "en-gb-scotland", 165),
    ("my sister is coming over for dinner on Sunday with the kids", "en-029+f4", 170),
]
AGENT = (
    "Thanks for waiting. I have found your order. It left our warehouse on Monday and it is "
    "now with the courier. The tracking shows that it should reach you by Thursday, between "
    "nine in the morning and one in the afternoon. If nobody is home, the driver will leave a "
    "card with a number to call. You can also choose a safe place, or ask for it to be "
    "delivered to a neighbour. Is there anything else I can help you with today?"
)
BACKCHANNELS = [("uh-huh", "en-us", "uh huh"), ("yeah", "en-us", "yeah"),
                ("mm-hmm", "en-gb", "mm hmm"), ("okay", "en-us+f3", "okay")]
INTERRUPTION = ("Wait, no, that is not what I asked for.", "en-us", 170)


# ---------------------------------------------------------------------------------------------
# speech

def speak(text, voice, wpm, tmp, max_ms=None):
    """eSpeak NG -> 8 kHz float samples, leading/trailing silence trimmed."""
    raw = os.path.join(tmp, "raw.wav")
    out = os.path.join(tmp, "out.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", raw, text], check=True)
    effects = ["silence", "1", "0.01", "-50d", "reverse", "silence", "1", "0.01", "-50d",
               "reverse", "norm", "-3"]
    if max_ms is not None:
        # Backchannels: squeeze to at most max_ms (tempo keeps the pitch).
        subprocess.run(["sox", "-R", "-D", raw, os.path.join(tmp, "trim.wav")] + effects,
                       check=True)
        length_ms = 1000.0 * soxi_seconds(os.path.join(tmp, "trim.wav"))
        if length_ms > max_ms:
            effects += ["tempo", "-s", "%.3f" % (length_ms / max_ms)]
    subprocess.run(["sox", "-R", "-D", raw, "-c", "1", "-b", "16", "-e", "signed-integer",
                    out] + effects + ["rate", "-v", str(RATE)], check=True)
    with wave.open(out) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        data = w.readframes(w.getnframes())
    return [s / 32768.0 for s in struct.unpack("<%dh" % (len(data) // 2), data)]


def soxi_seconds(path):
    out = subprocess.run(["soxi", "-D", path], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


# ---------------------------------------------------------------------------------------------
# filters (RBJ audio-EQ cookbook biquads)

def biquad(x, kind, fc, q=0.7071):
    w0 = 2 * math.pi * fc / RATE
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2 * q)
    if kind == "lp":
        b = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2]
    elif kind == "hp":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
    else:  # band-pass, 0 dB peak gain
        b = [alpha, 0.0, -alpha]
    a0, a1, a2 = 1 + alpha, -2 * cw, 1 - alpha
    b0, b1, b2 = (v / a0 for v in b)
    a1, a2 = a1 / a0, a2 / a0
    y = [0.0] * len(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, v in enumerate(x):
        out = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, v, y1, out
        y[i] = out
    return y


def phone_band(x):
    return biquad(biquad(x, "hp", 250.0), "lp", 3400.0)


# ---------------------------------------------------------------------------------------------
# noises (each returns (samples, burst_mask or None))

def white(n, rng):
    return [rng.gauss(0.0, 1.0) for _ in range(n)], None


def pink(n, rng):
    # Paul Kellet's refined pink filter.
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = 0.0
    out = []
    for _ in range(n):
        w = rng.gauss(0.0, 1.0)
        b0 = 0.99886 * b0 + w * 0.0555179
        b1 = 0.99332 * b1 + w * 0.0750759
        b2 = 0.96900 * b2 + w * 0.1538520
        b3 = 0.86650 * b3 + w * 0.3104856
        b4 = 0.55000 * b4 + w * 0.5329522
        b5 = -0.7616 * b5 - w * 0.0168980
        out.append(b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362)
        b6 = w * 0.115926
    return out, None


def car(n, rng):
    """Brown (leaky-integrated) rumble plus an engine's harmonics at a slowly wandering rpm."""
    out = []
    brown = 0.0
    phase = [0.0] * 12
    f0 = 32.0
    for i in range(n):
        brown = 0.995 * brown + rng.gauss(0.0, 1.0) * 0.1
        if i % 80 == 0:
            f0 = min(45.0, max(25.0, f0 + rng.gauss(0.0, 0.15)))
        hum = 0.0
        for k in range(12):
            phase[k] += 2 * math.pi * f0 * (k + 1) / RATE
            hum += math.sin(phase[k]) / (k + 1)
        out.append(brown + 0.02 * hum)
    return out, None


def babble(n, rng, tmp):
    voices = [speak(t, v, s, tmp) for (t, v, s) in BABBLE]
    out = [0.0] * n
    for v in voices:
        v = v + [0.0] * int(0.15 * RATE)
        pos = rng.randrange(len(v))
        gain = 10 ** (rng.uniform(-4.0, 0.0) / 20)
        for i in range(n):
            out[i] += gain * v[pos]
            pos = (pos + 1) % len(v)
    return out, None


def clicks(n, rng):
    out = [0.0] * n
    mask = [False] * n
    t = int(rng.uniform(0.1, 0.4) * RATE)
    while t < n - 200:
        length = rng.randrange(8, 40)  # 1-5 ms
        amp = 10 ** (rng.uniform(-6.0, 0.0) / 20)
        sign = rng.choice([-1.0, 1.0])
        for k in range(length):
            out[t + k] += sign * amp * math.exp(-k / (length / 4.0)) * (1.0 + 0.3 * rng.gauss(0, 1))
            mask[t + k] = True
        t += int(rng.uniform(0.15, 0.6) * RATE)
    return out, mask


def cough_burst(rng):
    """One cough: a broadband explosive onset, then a resonant, decaying tail (150-350 ms)."""
    length = int(rng.uniform(0.15, 0.35) * RATE)
    noise = [rng.gauss(0.0, 1.0) for _ in range(length)]
    body = biquad(noise, "bp", rng.uniform(400.0, 1400.0), q=rng.uniform(1.5, 4.0))
    attack = int(0.012 * RATE)
    tau = rng.uniform(0.05, 0.1) * RATE
    burst = []
    for k in range(length):
        env = (k / attack) if k < attack else math.exp(-(k - attack) / tau)
        burst.append(env * (0.6 * body[k] * 3.0 + 0.4 * noise[k] * (1.0 if k < 4 * attack else 0.2)))
    return burst


def coughs(n, rng):
    out = [0.0] * n
    mask = [False] * n
    t = int(rng.uniform(0.2, 0.8) * RATE)
    while t < n - int(0.8 * RATE):
        pulses = rng.choice([1, 1, 2, 3])
        for _ in range(pulses):
            b = cough_burst(rng)
            amp = 10 ** (rng.uniform(-4.0, 0.0) / 20)
            for k, v in enumerate(b):
                out[t + k] += amp * v
                mask[t + k] = True
            t += len(b) + int(rng.uniform(0.05, 0.12) * RATE)
        t += int(rng.uniform(0.6, 1.6) * RATE)
    return out, mask


# ---------------------------------------------------------------------------------------------
# levels, labels, mixing, mu-law

def power(x, mask=None):
    if mask is None:
        return sum(v * v for v in x) / max(1, len(x))
    sel = [v * v for v, m in zip(x, mask) if m]
    return sum(sel) / max(1, len(sel))


def db(p):
    return 10 * math.log10(max(p, 1e-12))


def scale(x, g):
    return [v * g for v in x]


def frame_db(x, f):
    seg = x[f * FRAME:(f + 1) * FRAME]
    return db(sum(v * v for v in seg) / FRAME)


def speech_labels(x):
    """Per-frame truth from a clean utterance: within 35 dB of its loudest frame, gaps of up to
    40 ms (stop closures inside words) closed."""
    frames = len(x) // FRAME
    levels = [frame_db(x, f) for f in range(frames)]
    top = max(levels)
    lab = [1 if lv >= top - 35.0 else 0 for lv in levels]
    last = None
    for f, v in enumerate(lab):
        if v:
            if last is not None and 0 < f - last - 1 <= 2:
                for g in range(last + 1, f):
                    lab[g] = 1
            last = f
    return lab


def active_power(x):
    lab = speech_labels(x)
    mask = []
    for v in lab:
        mask += [bool(v)] * FRAME
    return power(x[:len(mask)], mask)


def mulaw_encode(sample):
    """G.711 mu-law of one float in [-1, 1] (ITU-T G.711, bias 0x84, clip 32635)."""
    s = int(round(max(-1.0, min(1.0, sample)) * 32767))
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exp = 7
    mask = 0x4000
    while exp > 0 and not (s & mask):
        exp -= 1
        mask >>= 1
    mant = (s >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def write_mulaw_wav(path, x):
    data = bytes(mulaw_encode(v) for v in x)
    fmt = struct.pack("<HHIIHHH", 7, 1, RATE, RATE, 1, 8, 0)
    fact = struct.pack("<I", len(data))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def place(dst, src, at):
    for i, v in enumerate(src):
        if at + i < len(dst):
            dst[at + i] += v


def make_noise(kind, n, rng, tmp):
    if kind == "white":
        return white(n, rng)
    if kind == "pink":
        return pink(n, rng)
    if kind == "car":
        return car(n, rng)
    if kind == "babble":
        return babble(n, rng, tmp)
    if kind == "clicks":
        return clicks(n, rng)
    return coughs(n, rng)


def noise_at(kind, n, level_dbfs, rng, tmp):
    x, mask = make_noise(kind, n, rng, tmp)
    x = phone_band(x)
    g = math.sqrt(10 ** (level_dbfs / 10) / power(x, mask))
    return scale(x, g)


def floor_noise(n, rng):
    x = phone_band([rng.gauss(0, 1) for _ in range(n)])
    return scale(x, math.sqrt(10 ** (LINE_FLOOR_DBFS / 10) / power(x)))


def at_level(x, level_dbfs):
    return scale(x, math.sqrt(10 ** (level_dbfs / 10) / active_power(x)))


# ---------------------------------------------------------------------------------------------
# clips

def turn_clip(idx, kind, snr, utterances, rng, tmp):
    """2 s of line, turn 1 = phrase A, 400 ms pause, phrase B; 2 s of line; turn 2 = phrase C;
    2 s of line."""
    speech_dbfs = [-26.0, -20.0][idx % 2]  # 20 and 5 dB at -20 dBFS: the line
    a, b, c = (utterances[(3 * idx + k) % len(utterances)] for k in range(3))
    lead, pause, gap, tail = int(2.0 * RATE), int(0.4 * RATE), int(2.0 * RATE), int(2.0 * RATE)

    def frames_up(k):  # utterances start on frame boundaries, so labels map 1:1
        return (k + FRAME - 1) // FRAME * FRAME

    t1 = lead
    t1b = frames_up(t1 + len(a) + pause)
    t2 = frames_up(t1b + len(b) + gap)
    n = t2 + len(c) + tail
    n -= n % FRAME
    speech = [0.0] * n
    level = [at_level(u, speech_dbfs) for u in (a, b, c)]
    for u, at in zip(level, (t1, t1b, t2)):
        place(speech, u, at)
    labels = [0] * (n // FRAME)
    for u, at in zip(level, (t1, t1b, t2)):
        for f, v in enumerate(speech_labels(u)):
            labels[at // FRAME + f] |= v
    noise = noise_at(kind, n, speech_dbfs - snr, rng, tmp)
    mix = [s + v + w for s, v, w in zip(speech, noise, floor_noise(n, rng))]
    name = "turn-%s-%ddb.wav" % (kind, snr)
    write_mulaw_wav(os.path.join(OUT, name), mix)
    turns = []
    for first, second in (((t1, a), (t1b, b)), ((t2, c), None)):
        start = first[0]
        end = (second[0] + len(second[1])) if second else (first[0] + len(first[1]))
        fs, fe = start // FRAME, (end + FRAME - 1) // FRAME
        sp = [f for f in range(fs, min(fe + 1, len(labels))) if labels[f]]
        turns.append({"start_ms": sp[0] * 20, "end_ms": (sp[-1] + 1) * 20})
    return {
        "file": name, "noise": kind, "snr_db": snr, "speech_dbfs": speech_dbfs,
        "frames": "".join(str(v) for v in labels), "turns": turns,
        "pause_ms": 400,
    }


def barge_clip(kind, snr, agent, agent_labels, caller_sounds, rng, tmp):
    """Inbound audio while the agent speaks: echo + line noise + events + an interruption."""
    n = len(agent)
    caller_dbfs = -22.0
    erl_db, delay = 18.0, int(0.16 * RATE)
    echo = [0.0] * n
    place(echo, scale(biquad(agent, "lp", 2800.0), 10 ** (-erl_db / 20)), delay)
    events = []
    mix = [e + f for e, f in zip(echo, floor_noise(n, rng))]
    if kind != "quiet":
        mix = [m + v for m, v in zip(mix, noise_at(kind, n, caller_dbfs - snr, rng, tmp))]
    plan = [(2.5, "cough"), (5.0, "uh-huh"), (7.5, "clicks"), (10.0, "yeah"),
            (12.5, "cough"), (15.0, "mm-hmm"), (17.0, "okay"), (19.5, "interruption")]
    for at_s, what in plan:
        at = int(at_s * RATE)
        if what == "cough":
            pulses = [cough_burst(rng) for _ in range(2)]
            sound = pulses[0] + [0.0] * int(0.08 * RATE) + pulses[1]
            sound = phone_band(sound)
            sound = scale(sound, math.sqrt(10 ** ((caller_dbfs + 3) / 10) / power(sound)))
        elif what == "clicks":
            sound = [0.0] * int(0.3 * RATE)
            for at_click in (0, int(0.11 * RATE), int(0.23 * RATE)):
                place(sound, [rng.choice([-1.0, 1.0]) * math.exp(-k / 5.0) for k in range(24)],
                      at_click)
            sound = phone_band(sound)
            sound = scale(sound, 0.5 / max(abs(v) for v in sound))
        else:
            sound = at_level(caller_sounds[what], caller_dbfs)
        place(mix, sound, at)
        events.append({"kind": what, "start_ms": at * 1000 // RATE,
                       "end_ms": (at + len(sound)) * 1000 // RATE})
    name = "barge-%s.wav" % kind
    write_mulaw_wav(os.path.join(OUT, name), mix)
    return {
        "file": name, "noise": kind, "snr_db": snr, "caller_dbfs": caller_dbfs,
        "agent_file": "agent.wav", "erl_db": erl_db, "echo_delay_ms": 160, "events": events,
    }


def write_sounds(tmp):
    """The e2e tests' caller sounds, at the barge-in clips' caller level (own seed, so they do
    not change the evaluation set)."""
    rng = random.Random(12)
    caller_dbfs = -22.0
    pulses = [cough_burst(rng) for _ in range(2)]
    cough = phone_band(pulses[0] + [0.0] * int(0.08 * RATE) + pulses[1])
    cough = scale(cough, math.sqrt(10 ** ((caller_dbfs + 3) / 10) / power(cough)))
    uh_huh = at_level(phone_band(speak("uh huh", "en-us", 200, tmp, max_ms=300)), caller_dbfs)
    stop = at_level(phone_band(speak("Hold on, stop please.", "en-us", 190, tmp, max_ms=1000)),
                    caller_dbfs)
    for name, x in [("sound-cough.wav", cough), ("sound-uh-huh.wav", uh_huh),
                    ("sound-interruption.wav", stop)]:
        write_mulaw_wav(os.path.join(OUT, name), x)


def main():
    os.makedirs(OUT, exist_ok=True)
    if len(sys.argv) > 1 and sys.argv[1] == "sounds":
        with tempfile.TemporaryDirectory() as tmp:
            write_sounds(tmp)
        return
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        utterances = [speak(t, v, s, tmp) for (t, v, s) in PHRASES]
        turn_clips = []
        idx = 0
        for kind in NOISES:
            for snr in SNRS:
                turn_clips.append(turn_clip(idx, kind, snr, utterances, rng, tmp))
                idx += 1
        agent = at_level(speak(AGENT, "en-us+f2", 175, tmp), -18.0)
        agent += [0.0] * (int(24.0 * RATE) - len(agent)) if len(agent) < 24 * RATE else []
        agent = agent[:int(24.0 * RATE)]
        write_mulaw_wav(os.path.join(OUT, "agent.wav"), agent)
        agent_labels = speech_labels(agent)
        sounds = {k: speak(t, v, 200, tmp, max_ms=380) for (k, v, t) in BACKCHANNELS}
        sounds["interruption"] = speak(*INTERRUPTION, tmp)
        barge_clips = [barge_clip(k, s, agent, agent_labels, sounds, rng, tmp)
                       for (k, s) in [("quiet", 60), ("white", 20), ("car", 10), ("babble", 20)]]
        write_sounds(tmp)
    manifest = {
        "about": "Generated by scripts/make-vad-fixtures.py; see fixtures/vad/README.md.",
        "rate_hz": RATE, "frame_ms": 20, "end_of_turn_ms": 600,
        "turn_clips": turn_clips, "barge_in_clips": barge_clips,
        "agent_frames": "".join(str(v) for v in agent_labels),
    }
    with open(os.path.join(OUT, "labels.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
