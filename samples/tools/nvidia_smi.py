"""Write nvidia-smi output in the forms users paste (FORMATS.md §3), for fixtures and samples.

No GPU was available to run nvidia-smi itself, so the layouts follow FORMATS.md, which quotes
real outputs: the default table (535+ 89-column and 525- 79-column), `-q`, `-q -x` XML,
`--query-gpu=... --format=csv[,noheader][,nounits]` and `--query-compute-apps`. A `--loop N`
repeats the snapshot N times one second apart with changing memory, like `nvidia-smi -l 1`.

    python nvidia_smi.py table --gpu "NVIDIA H100 80GB HBM3:81559:72459" --proc 0:2443:C:/usr/bin/python3:71200
"""

import argparse
from datetime import datetime, timedelta


def parse_gpu(s: str) -> dict:
    name, total, used = s.rsplit(":", 2)
    return {"name": name, "total": int(total), "used": int(used)}


def parse_proc(s: str) -> dict:
    gpu, pid, typ, name, mem = s.split(":", 4)
    return {"gpu": int(gpu), "pid": int(pid), "type": typ, "name": name, "mem": int(mem)}


def table(gpus, procs, when, driver, cuda, old=False) -> str:
    w = 79 if old else 89
    stamp = when.strftime("%a %b %d %H:%M:%S %Y")
    out = [stamp]
    if old:
        out += ["+-----------------------------------------------------------------------------+",
                f"| NVIDIA-SMI {driver:<13s} Driver Version: {driver:<13s} CUDA Version: {cuda:<5s}    |",
                "|-------------------------------+----------------------+----------------------+",
                "| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |",
                "| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |",
                "|                               |                      |               MIG M. |",
                "|===============================+======================+======================|"]
    else:
        out += ["+" + "-" * (w - 2) + "+",
                f"| NVIDIA-SMI {driver:<22s} Driver Version: {driver:<14s} CUDA Version: {cuda:<9s}|",
                "|-----------------------------------------+----------------------+----------------------+",
                "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
                "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
                "|                                         |                        |               MIG M. |",
                "|=========================================+========================+======================|"]
    for i, g in enumerate(gpus):
        mem = f"{g['used']}MiB / {g['total']}MiB"
        util = 97 if g["used"] > g["total"] * 0.5 else 0
        if old:
            name = (g["name"][:15] + "...") if len(g["name"]) > 18 else g["name"]
            out += [f"| {i:>3}  {name:<18s}  On   | 00000000:{4 + i:02X}:00.0 Off |                    0 |",
                    f"| N/A   36C    P0   113W / 400W | {mem:>20s} | {util:>5}%      Default |",
                    "|                               |                      |             Disabled |",
                    "+-------------------------------+----------------------+----------------------+"]
        else:
            out += [f"| {i:>3}  {g['name']:<28s}  On   |   00000000:{4 + i:02X}:00.0 Off |                    0 |",
                    f"| N/A   36C    P0             113W / 700W | {mem:>22s} | {util:>6}%      Default |",
                    "|                                         |                        |             Disabled |",
                    "+-----------------------------------------+------------------------+----------------------+"]
    out += ["", "+" + "-" * (w - 2) + "+",
            "| Processes:" + " " * (w - 13) + "|"]
    if old:
        out += ["|  GPU   GI   CI        PID   Type   Process name                  GPU Memory |",
                "|        ID   ID                                                   Usage      |",
                "|=============================================================================|"]
    else:
        out += ["|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |",
                "|        ID   ID                                                               Usage      |",
                "|=======================================================================================|"]
    if not procs:
        out.append("|  No running processes found" + " " * (w - 30) + "|")
    for p in procs:
        name = p["name"] if len(p["name"]) <= 35 else "..." + p["name"][-32:]
        if old:
            out.append(f"|  {p['gpu']:>3}   N/A  N/A  {p['pid']:>9}      {p['type']:<2}  {name[:29]:<29s} {str(p['mem']) + 'MiB':>9s} |")
        else:
            out.append(f"|  {p['gpu']:>3}   N/A  N/A  {p['pid']:>15}      {p['type']:<4} {name:<35s} {str(p['mem']) + 'MiB':>9s} |")
    out.append("+" + "-" * (w - 2) + "+")
    return "\n".join(out) + "\n"


def query(gpus, procs, when, driver, cuda, mig=False) -> str:
    out = ["", "==============NVSMI LOG==============", "",
           f"Timestamp                                 : {when.strftime('%a %b %d %H:%M:%S %Y')}",
           f"Driver Version                            : {driver}", f"CUDA Version                              : {cuda}", "",
           f"Attached GPUs                             : {len(gpus)}"]
    for i, g in enumerate(gpus):
        reserved = 834 if g["total"] > 40000 else 250
        out += [f"GPU 00000000:{4 + i:02X}:00.0",
                f"    Product Name                          : {g['name']}",
                "    Product Brand                         : NVIDIA",
                f"    Minor Number                          : {i}",
                "    MIG Mode",
                f"        Current                           : {'Enabled' if mig else 'Disabled'}",
                f"        Pending                           : {'Enabled' if mig else 'Disabled'}"]
        if mig:
            half = (g["total"] - reserved) // 2
            out += ["    MIG Devices"]
            for m in range(2):
                out += ["        MIG Device",
                        f"            Index                         : {m}",
                        f"            GPU Instance ID               : {m + 1}",
                        "            Compute Instance ID           : 0",
                        "            FB Memory Usage",
                        f"                Total                     : {half} MiB",
                        f"                Used                      : {g['used'] // 2} MiB",
                        f"                Free                      : {half - g['used'] // 2} MiB"]
        out += ["    FB Memory Usage",
                f"        Total                             : {g['total']} MiB",
                f"        Reserved                          : {reserved} MiB",
                f"        Used                              : {g['used']} MiB",
                f"        Free                              : {g['total'] - reserved - g['used']} MiB",
                "    Utilization",
                f"        Gpu                               : {97 if g['used'] > g['total'] * 0.5 else 0} %",
                "        Memory                            : 0 %",
                "    Clocks Event Reasons",
                "        Idle                              : Active"]
        mine = [p for p in procs if p["gpu"] == i]
        if not mine:
            out.append("    Processes                             : None")
        else:
            out.append("    Processes")
            for p in mine:
                out += ["        GPU instance ID                   : N/A",
                        "        Compute instance ID               : N/A",
                        f"        Process ID                        : {p['pid']}",
                        f"            Type                          : {p['type']}",
                        f"            Name                          : {p['name']}",
                        f"            Used GPU Memory               : {p['mem']} MiB"]
        out.append("")
    return "\n".join(out) + "\n"


def xml(gpus, procs, when, driver, cuda) -> str:
    out = ['<?xml version="1.0" ?>', '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">', "<nvidia_smi_log>",
           f"\t<timestamp>{when.strftime('%a %b %d %H:%M:%S %Y')}</timestamp>",
           f"\t<driver_version>{driver}</driver_version>", f"\t<cuda_version>{cuda}</cuda_version>",
           f"\t<attached_gpus>{len(gpus)}</attached_gpus>"]
    for i, g in enumerate(gpus):
        reserved = 834 if g["total"] > 40000 else 250
        out += [f'\t<gpu id="00000000:{4 + i:02X}:00.0">', f"\t\t<product_name>{g['name']}</product_name>",
                "\t\t<mig_mode>\n\t\t\t<current_mig>Disabled</current_mig>\n\t\t\t<pending_mig>Disabled</pending_mig>\n\t\t</mig_mode>",
                f"\t\t<uuid>GPU-{i:08x}-1111-2222-3333-444455556666</uuid>", f"\t\t<minor_number>{i}</minor_number>",
                "\t\t<fb_memory_usage>", f"\t\t\t<total>{g['total']} MiB</total>", f"\t\t\t<reserved>{reserved} MiB</reserved>",
                f"\t\t\t<used>{g['used']} MiB</used>", f"\t\t\t<free>{g['total'] - reserved - g['used']} MiB</free>",
                "\t\t</fb_memory_usage>", "\t\t<utilization>", "\t\t\t<gpu_util>0 %</gpu_util>", "\t\t\t<memory_util>0 %</memory_util>",
                "\t\t</utilization>", "\t\t<processes>"]
        for p in (p for p in procs if p["gpu"] == i):
            out += ["\t\t\t<process_info>", "\t\t\t\t<gpu_instance_id>N/A</gpu_instance_id>",
                    "\t\t\t\t<compute_instance_id>N/A</compute_instance_id>", f"\t\t\t\t<pid>{p['pid']}</pid>",
                    f"\t\t\t\t<type>{p['type']}</type>", f"\t\t\t\t<process_name>{p['name']}</process_name>",
                    f"\t\t\t\t<used_memory>{p['mem']} MiB</used_memory>", "\t\t\t</process_info>"]
        out += ["\t\t</processes>", "\t</gpu>"]
    out.append("</nvidia_smi_log>")
    return "\n".join(out) + "\n"


def csv(gpus, procs, when, header=True, units=True, apps=False, stamp=False) -> str:
    u = (lambda v, unit: f"{v} {unit}") if units else (lambda v, _unit: str(v))
    if apps:
        rows = ["pid, process_name, used_gpu_memory" + (" [MiB]" if units else "")] if header else []
        rows += [f"{p['pid']}, {p['name']}, {u(p['mem'], 'MiB')}" for p in procs]
        return "\n".join(rows) + "\n"
    cols = (["timestamp"] if stamp else []) + ["index", "name", "memory.total", "memory.used", "memory.free", "utilization.gpu"]
    head = ", ".join(c + ({"memory.total": " [MiB]", "memory.used": " [MiB]", "memory.free": " [MiB]", "utilization.gpu": " [%]"}.get(c, "") if units else "") for c in cols)
    rows = [head] if header else []
    for i, g in enumerate(gpus):
        reserved = 834 if g["total"] > 40000 else 250
        vals = ([when.strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]] if stamp else []) + [
            str(i), g["name"], u(g["total"], "MiB"), u(g["used"], "MiB"), u(g["total"] - reserved - g["used"], "MiB"), u(0, "%")]
        rows.append(", ".join(vals))
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("form", choices=["table", "table-old", "q", "q-mig", "xml", "csv", "csv-noheader", "csv-nounits",
                                    "csv-noheader-nounits", "csv-apps"])
    p.add_argument("--gpu", action="append", type=parse_gpu, required=True, help="NAME:TOTAL_MIB:USED_MIB")
    p.add_argument("--proc", action="append", type=parse_proc, default=[], help="GPU:PID:TYPE:NAME:MIB")
    p.add_argument("--driver", default="550.135")
    p.add_argument("--cuda", default="12.4")
    p.add_argument("--when", default="2026-11-20 09:13:50")
    p.add_argument("--loop", type=int, default=1, help="snapshots one second apart (nvidia-smi -l 1)")
    p.add_argument("--grow", type=int, default=0, help="MiB added to GPU 0's use at each loop step")
    a = p.parse_args()
    when = datetime.fromisoformat(a.when)
    first = True
    for step in range(a.loop):
        gpus = [dict(g) for g in a.gpu]
        gpus[0]["used"] = min(gpus[0]["total"], gpus[0]["used"] + step * a.grow)
        t = when + timedelta(seconds=step)
        if a.form in ("table", "table-old"):
            print(table(gpus, a.proc, t, a.driver, a.cuda, old=a.form == "table-old"), end="")
        elif a.form in ("q", "q-mig"):
            print(query(gpus, a.proc, t, a.driver, a.cuda, mig=a.form == "q-mig"), end="")
        elif a.form == "xml":
            print(xml(gpus, a.proc, t, a.driver, a.cuda), end="")
        else:
            print(csv(gpus, a.proc, t, header=first and "noheader" not in a.form, units="nounits" not in a.form,
                      apps=a.form == "csv-apps", stamp=a.loop > 1), end="")
        first = False


if __name__ == "__main__":
    main()
