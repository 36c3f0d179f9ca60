"""Keep chosen presets of a SoundFont (SF2, or SF3 with Ogg Vorbis samples) in a new file.

A General MIDI soundfont is 4-150 MB, its acoustic grand a few MB; only the pianos need
to travel to the machine that renders the piano set. The file is a RIFF tree (SoundFont
2.04 spec, sections 4-7): `INFO`, `sdta/smpl` (the sample data) and `pdta`, whose nine
record tables link presets -> preset zones -> instruments -> instrument zones -> samples
by index. Subsetting keeps the records reachable from the chosen presets, renumbers the
links, and copies each kept sample's bytes. In SF2 a sample's start, end and loop points
are sample offsets into `smpl`; in SF3 (FluidSynth's SoundFont3Format) start and end are
byte offsets of its Ogg stream and the loop points are relative to the sample, so they
stay as they are.
"""

from __future__ import annotations

import struct
from pathlib import Path

from training.files import replacing

# Record sizes of the pdta tables (spec 7.2-7.10); each table ends with a terminal record.
RECORD = {"phdr": 38, "pbag": 4, "pmod": 10, "pgen": 4, "inst": 22, "ibag": 4, "imod": 10, "igen": 4, "shdr": 46}
GEN_INSTRUMENT, GEN_SAMPLE_ID = 41, 53
SF2_PAD_SAMPLES = 46  # zero samples the spec requires after every SF2 sample


def _chunks(data: bytes, start: int, end: int) -> dict[str, bytes]:
    out, pos = {}, start
    while pos + 8 <= end:
        cid, size = data[pos : pos + 4].decode("latin-1"), struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        out[cid + ":" + body[:4].decode("latin-1") if cid == "LIST" else cid] = body
        # RIFF pads odd chunks to even sizes; MuseScore's SF3 writer does not.
        pos += 8 + size + (size & 1 and data[pos + 8 + size : pos + 9 + size] == b"\0")
    return out


def _records(table: bytes, size: int) -> list[bytes]:
    return [table[i : i + size] for i in range(0, len(table), size)]


def _chunk(cid: str, body: bytes) -> bytes:
    return cid.encode() + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _list(kind: str, chunks: list[bytes]) -> bytes:
    return _chunk("LIST", kind.encode() + b"".join(chunks))


def _zones(bags: list[bytes], gens: list[bytes], mods: list[bytes], first: int, last: int):
    """The (generator records, modulator records) of bags first..last-1."""
    for b in range(first, last):
        g0, m0 = struct.unpack("<HH", bags[b])
        g1, m1 = struct.unpack("<HH", bags[b + 1])
        yield gens[g0:g1], mods[m0:m1]


def _relink(zones, target_gen: int, mapping: dict[int, int]):
    """Zones with the generator `target_gen` pointing through `mapping`."""
    for gens, mods in zones:
        new = []
        for g in gens:
            oper, amount = struct.unpack("<HH", g)
            new.append(struct.pack("<HH", oper, mapping[amount]) if oper == target_gen else g)
        yield new, mods


def _bag_tables(zone_lists) -> tuple[list[bytes], list[bytes], list[bytes], list[int]]:
    """Concatenates per-owner zone lists into bag/gen/mod tables; returns each owner's first bag
    and, last, the terminal record's."""
    bags: list[bytes] = []
    gens: list[bytes] = []
    mods: list[bytes] = []
    firsts: list[int] = []
    for zones in zone_lists:
        firsts.append(len(bags))
        for zone_gens, zone_mods in zones:
            bags.append(struct.pack("<HH", len(gens), len(mods)))
            gens += zone_gens
            mods += zone_mods
    firsts.append(len(bags))
    bags.append(struct.pack("<HH", len(gens), len(mods)))
    return bags, gens + [b"\0" * 4], mods + [b"\0" * 10], firsts


def presets(path: str | Path) -> list[tuple[int, int, str]]:
    """(bank, program, name) of every preset in a soundfont."""
    data = Path(path).read_bytes()
    table = _chunks(data, 12, len(data))["LIST:pdta"]
    pdta = _chunks(table, 4, len(table))
    out = []
    for rec in _records(pdta["phdr"], RECORD["phdr"])[:-1]:
        name, program, bank = struct.unpack_from("<20sHH", rec)
        out.append((bank, program, name.split(b"\0")[0].decode("latin-1")))
    return out


def extract_presets(src: str | Path, dst: str | Path, keep: list[tuple[int, int]]) -> list[str]:
    """Writes a soundfont holding only the presets `keep` [(bank, program)] of `src`;
    returns their names. Written to a temporary file and renamed into place."""
    data = Path(src).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise ValueError(f"{src} is not a SoundFont (no RIFF sfbk header)")
    top = _chunks(data, 12, len(data))
    info, smpl = top["LIST:INFO"], _chunks(top["LIST:sdta"], 4, len(top["LIST:sdta"]))["smpl"]
    pdta = {
        k: _records(v, RECORD[k]) for k, v in _chunks(top["LIST:pdta"], 4, len(top["LIST:pdta"])).items() if k in RECORD
    }
    sf3 = struct.unpack_from("<H", _chunks(info, 4, len(info))["ifil"])[0] >= 3

    phdr = pdta["phdr"]
    chosen = [i for i, rec in enumerate(phdr[:-1]) if struct.unpack_from("<HH", rec, 20)[::-1] in set(keep)]
    if not chosen:
        raise ValueError(f"{src} has none of the presets {keep}")
    preset_zones = [
        list(
            _zones(
                pdta["pbag"],
                pdta["pgen"],
                pdta["pmod"],
                struct.unpack_from("<H", phdr[i], 24)[0],
                struct.unpack_from("<H", phdr[i + 1], 24)[0],
            )
        )
        for i in chosen
    ]

    def used(zone_lists, gen):
        return sorted(
            {
                struct.unpack("<HH", g)[1]
                for zones in zone_lists
                for gens, _ in zones
                for g in gens
                if struct.unpack("<HH", g)[0] == gen
            }
        )

    inst_ids = used(preset_zones, GEN_INSTRUMENT)
    inst = pdta["inst"]
    inst_zones = [
        list(
            _zones(
                pdta["ibag"],
                pdta["igen"],
                pdta["imod"],
                struct.unpack_from("<H", inst[i], 20)[0],
                struct.unpack_from("<H", inst[i + 1], 20)[0],
            )
        )
        for i in inst_ids
    ]
    sample_ids = used(inst_zones, GEN_SAMPLE_ID)
    shdr = pdta["shdr"]
    # Stereo pairs link to each other (sampleLink): keep both halves.
    for s in list(sample_ids):
        link = struct.unpack_from("<H", shdr[s], 42)[0]
        if struct.unpack_from("<H", shdr[s], 44)[0] in (2, 4) and link not in sample_ids:
            sample_ids.append(link)
    sample_ids.sort()
    sample_map = {old: new for new, old in enumerate(sample_ids)}

    new_smpl, new_shdr = bytearray(), []
    width = 1 if sf3 else 2  # SF3 offsets count bytes, SF2 offsets count 16-bit samples
    for s in sample_ids:
        name, start, end, loop_start, loop_end, rate, pitch, corr, link, kind = struct.unpack("<20sIIIIIBbHH", shdr[s])
        stop = end if sf3 else min(end + SF2_PAD_SAMPLES, len(smpl) // 2)
        shift = len(new_smpl) // width - start
        new_smpl += smpl[start * width : stop * width]
        if not sf3:
            new_smpl += b"\0" * (2 * (end + SF2_PAD_SAMPLES - stop))  # the padding past the data's end
            loop_start, loop_end = loop_start + shift, loop_end + shift
        new_shdr.append(
            struct.pack(
                "<20sIIIIIBbHH",
                name,
                start + shift,
                end + shift,
                loop_start,
                loop_end,
                rate,
                pitch,
                corr,
                sample_map.get(link, 0),
                kind,
            )
        )
    new_shdr.append(struct.pack("<20s", b"EOS") + b"\0" * 26)

    ibag, igen, imod, inst_first = _bag_tables(list(_relink(z, GEN_SAMPLE_ID, sample_map)) for z in inst_zones)
    new_inst = [inst[i][:20] + struct.pack("<H", f) for i, f in zip(inst_ids, inst_first[:-1], strict=True)]
    new_inst.append(struct.pack("<20sH", b"EOI", inst_first[-1]))
    inst_map = {old: new for new, old in enumerate(inst_ids)}
    pbag, pgen, pmod, preset_first = _bag_tables(list(_relink(z, GEN_INSTRUMENT, inst_map)) for z in preset_zones)
    new_phdr = [
        phdr[i][:24] + struct.pack("<H", f) + phdr[i][26:] for i, f in zip(chosen, preset_first[:-1], strict=True)
    ]
    new_phdr.append(struct.pack("<20sHHH", b"EOP", 0, 0, preset_first[-1]) + b"\0" * 12)

    tables = {
        "phdr": new_phdr,
        "pbag": pbag,
        "pmod": pmod,
        "pgen": pgen,
        "inst": new_inst,
        "ibag": ibag,
        "imod": imod,
        "igen": igen,
        "shdr": new_shdr,
    }
    body = (
        b"sfbk"
        + _chunk("LIST", b"INFO" + info[4:])
        + _list("sdta", [_chunk("smpl", bytes(new_smpl))])
        + _list("pdta", [_chunk(k, b"".join(tables[k])) for k in RECORD])
    )
    dst = Path(dst)
    with replacing(Path(dst)) as (temporary,):
        temporary.write_bytes(_chunk("RIFF", body))
    return [struct.unpack_from("<20s", phdr[i])[0].split(b"\0")[0].decode("latin-1") for i in chosen]
