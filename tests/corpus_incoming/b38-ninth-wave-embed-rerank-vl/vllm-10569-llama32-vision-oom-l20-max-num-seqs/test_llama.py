[... trimmed ...]
prompt = f"<|image|><|begin_of_text|>{query}\n"
prompt = TEMPLATE.format(prompt=prompt)

image = Image.open("3.png")

inputs = [{
            "prompt": prompt,
            "multi_modal_data": {
                 "image": image,
            },
        } for _ in range(args.batch_size)]

print("******************** model generate begin **********************")
import time
start = time.time()

outputs = llm.generate(
    inputs,
    sampling_params=sampling_params
)
cost = time.time()-start
print("model total cost is ",cost)

for o in outputs:
    generated_text = o.outputs[0].text
    print(generated_text)
