# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Introducción a redes convolucionales
#
# Este cuaderno recorre, paso a paso, las ideas del cuaderno original «Introducción a Redes
# Convolucionales»: qué es una convolución, cómo se preparan los dígitos de MNIST, cómo son
# las redes convolucionales que los clasifican y qué han aprendido.
#
# Hay una diferencia importante con el original: aquí **no se entrena nada por defecto**. El
# trabajo pesado lo hace el pipeline del proyecto (`make repro`, que ejecuta `dvc repro`): él
# descarga los datos, entrena las redes con varias semillas, las evalúa y comprueba las
# afirmaciones del cuaderno original. Este cuaderno lee esos resultados con las mismas
# funciones del paquete `intro_cnn` que usa el informe (`reports/index.html`), así que los
# números y las figuras que verás aquí son los mismos que los del informe.
#
# Para abrirlo: `make notebook` en la raíz del proyecto, y la dirección que imprime.

# %% [markdown]
# ## Parámetros
#
# `ENTRENAR = True` activa la única celda que entrena (la del apartado 10): reentrena
# `cnn_small` durante `EPOCAS_NUEVAS` épocas para compararla con la del pipeline. Con
# `False`, el cuaderno entero tarda unos segundos. `IDIOMA` elige la lengua de los rótulos de
# las figuras y de los mensajes: `"es"` o `"en"`.

# %% tags=["parameters"]
ENTRENAR = False
EPOCAS_NUEVAS = 2
IDIOMA = "es"  # "en": rótulos de las figuras en inglés

# %% [markdown]
# ## 0. ¿Se ha ejecutado el pipeline?
#
# Todas las rutas del proyecto son relativas a su carpeta raíz, así que primero nos movemos
# allí (se busca hacia arriba desde la carpeta del cuaderno, o se toma de la variable de
# entorno `INTRO_CNN_ROOT`). Después comprobamos que estén las salidas del pipeline que este
# cuaderno necesita: los modelos entrenados (`models/*.keras`), sus historiales
# (`reports/train/*/history.csv`), sus evaluaciones y las comparaciones (`reports/compare/`).

# %%
import functools

import numpy as np

from intro_cnn import config
from intro_cnn.notebook import images, project, status

RAIZ = project.enter_root()
PARAMS = config.load_params()
MODELOS = tuple(PARAMS.models)
# Cada figura se convierte en PNG como en el informe (su misma resolución).
mostrar = functools.partial(images.show, dpi=PARAMS.report.dpi)

estado = status.check(RAIZ, MODELOS)
print(estado.message(IDIOMA))

# %% [markdown]
# ## 1. La convolución en una dimensión
#
# Una convolución recorre una señal con una ventana pequeña de pesos, el **filtro** (o
# núcleo), y en cada posición calcula una suma ponderada de los valores que caen dentro de
# la ventana. Si todos los pesos son positivos y suman 1, esa suma es una **media
# ponderada**: la señal se suaviza, pero conserva su nivel.
#
# Nuestro filtro es una campana de Gauss, `exp(-x²)`, muestreada en 15 puntos entre -2 y 2 y
# normalizada para que sume 1. Los parámetros salen de la sección `convolutions` de
# `params.yaml`, los mismos que usa la etapa `convolutions` del pipeline.

# %%
from intro_cnn.demos import convolutions as conv

imagen = conv.read_image(config.raw_image_path(), PARAMS.convolutions.gauss_taps)
demo = conv.compute_all(PARAMS.convolutions, imagen)
g = demo["g"]
print(f"{g.size} coeficientes; suman {g.sum():.6f}; el central pesa {g[g.size // 2]:.4f}")
mostrar(conv.fig_gaussian_1d(g, IDIOMA))

# %% [markdown]
# La señal que vamos a suavizar es un **paseo aleatorio**: empezamos en 0 y en cada paso
# sumamos un número al azar de una normal estándar. Es una curva muy nerviosa, ideal para ver
# el efecto del filtro.
#
# Para convencernos de que `scipy.ndimage.convolve` hace lo que decimos, calculamos a mano un
# valor de la salida: la suma de los 15 valores alrededor del paso `i`, cada uno multiplicado
# por su peso (la convolución invierte el filtro; al ser simétrico, no se nota). En los bordes
# faltan vecinos: `convolve` los inventa reflejando la señal (`mode="reflect"`), por eso la
# salida mide lo mismo que la entrada.

# %%
paseo, suave = demo["walk"], demo["smoothed"]
i, r = 100, g.size // 2
a_mano = np.dot(paseo[i - r : i + r + 1], g[::-1])
print(f"Paso {i}: a mano {a_mano:.6f}; con convolve {suave[i]:.6f}")
print(f"{paseo.size} pasos de entrada, {suave.size} de salida")
mostrar(conv.fig_random_walk(paseo, suave, IDIOMA))

# %% [markdown]
# ## 2. La convolución en dos dimensiones
#
# Con una imagen pasa lo mismo, pero la ventana es un cuadrado que se desliza por filas y
# columnas. Partimos de la imagen de demostración que descargó el pipeline (por defecto, «El
# caballero de la mano en el pecho»). Es una matriz de alto × ancho × 3 canales (rojo, verde y
# azul) con valores enteros de 0 a 255.

# %%
print(f"Imagen: {demo['image'].shape} ({demo['image'].dtype})")
mostrar(conv.fig_image(demo["image"], IDIOMA))

# %% [markdown]
# El filtro gaussiano en 2D se obtiene multiplicando el de 1D por sí mismo, fila por columna
# (un producto exterior): `g2d[i, j] = g[i] · g[j]`. También suma 1, y es **separable**:
# suavizar con él equivale a suavizar primero las filas y después las columnas.

# %%
print(f"Filtro 2D {demo['g2d'].shape}; suma {demo['g2d'].sum():.6f}")
mostrar(conv.fig_gaussian_2d(demo["g2d"], IDIOMA))

# %% [markdown]
# Para suavizar una imagen en color, aplicamos el filtro a **cada canal por separado**: al
# filtro se le añade un eje de canales de longitud 1, de modo que el rojo solo se mezcla con
# rojo, el verde con verde y el azul con azul. Antes convertimos la imagen a números reales:
# sobre enteros de 8 bits, `convolve` truncaría los resultados.

# %%
mostrar(conv.fig_blurred(demo["blurred"], IDIOMA))

# %% [markdown]
# Para buscar bordes basta con un solo canal: la escala de grises es la media de los tres.

# %%
mostrar(conv.fig_grey(demo["grey"], IDIOMA))

# %% [markdown]
# ## 3. Un filtro que detecta bordes (tipo Sobel)
#
# Un borde es un sitio donde el brillo cambia de golpe. Si al filtro gaussiano le restamos su
# vecino de la derecha (lo convolucionamos con `[-1, 1]`), obtenemos una **derivada
# suavizada** en horizontal, parecida al filtro de Sobel: una mitad positiva, otra negativa y
# suma 0. Sobre una zona lisa la respuesta es 0; donde el brillo cambia de izquierda a
# derecha, la respuesta es grande (positiva o negativa según el sentido del cambio).

# %%
gradiente = demo["gradient"]
print(f"Suma del filtro de bordes: {gradiente.sum():.2e} (cero, salvo redondeo)")
mostrar(conv.fig_gradient_filter(gradiente, IDIOMA))

# %% [markdown]
# Al aplicarlo a la imagen en grises aparecen los contornos verticales: el borde de la
# silueta, la gorguera, la mano. El gris medio es «ninguna respuesta»; claro y oscuro son
# los dos sentidos del cambio.

# %%
mostrar(conv.fig_edges(demo["edges"], IDIOMA))

# %% [markdown]
# Una red convolucional hace exactamente esto, pero **aprende** los pesos de sus filtros a
# partir de los datos en lugar de recibirlos diseñados a mano. Lo veremos en el apartado 7.
#
# ## 4. MNIST: de los bytes a los tensores
#
# MNIST son 70 000 dígitos escritos a mano, en imágenes de 28 × 28 píxeles con valores enteros
# de 0 (fondo negro) a 255 (tinta blanca): 60 000 para entrenar y 10 000 para la prueba final.
# La etapa `preprocess` del pipeline los prepara con tres decisiones:
#
# 1. divide los píxeles entre 255, para trabajar con reales entre 0 y 1;
# 2. añade un eje de canal al final (28 × 28 × 1), porque las capas convolucionales esperan
#    imágenes con canales, como las de color;
# 3. reserva el último 10 % del conjunto de entrenamiento para **validación**, como hace
#    `fit(validation_split=0.1)` de Keras: la red no aprende de esas imágenes, y nos sirven
#    para vigilar el sobreajuste durante el entrenamiento.
#
# Primero, el paso 1 sobre tres píxeles sueltos:

# %%
from intro_cnn.data import dataset, preprocess

tres_pixeles = np.array([[[0, 128, 255]]], dtype=np.uint8)
print(preprocess.to_float_images(tres_pixeles).squeeze())

# %% [markdown]
# Ahora la receta completa sobre el MNIST descargado por el pipeline, comparada con el fichero
# que escribió la etapa `preprocess` (`data/processed/mnist.npz`): deben coincidir bit a bit.

# %%
receta = preprocess.split_raw(config.RAW_MNIST, PARAMS.preprocess.validation_split)
procesado = dataset.load_processed()
for clave in dataset.SPLITS:
    x = procesado[clave]
    igual = np.array_equal(receta[clave], x)
    print(f"{clave:8} {x.shape!s:20} {x.dtype!s:8} ¿igual que el pipeline? {igual}")
del receta

# %% [markdown]
# Las etiquetas son enteros de 0 a 9. Para entrenar con entropía cruzada categórica se
# codifican en **one-hot**: un vector de 10 ceros con un 1 en la posición de la clase.

# %%
etiquetas = procesado["y_train"][:5]
print("etiquetas:", etiquetas)
print(dataset.one_hot(etiquetas))

# %%
from intro_cnn.notebook import figures

mostrar(figures.fig_digits(procesado["x_train"][:8], procesado["y_train"][:8], IDIOMA))

# %% [markdown]
# ### La receta de los dígitos
#
# ¿Y si queremos clasificar un dígito escrito por nosotros (`make predict IMG=foto.jpg`)? Una
# foto tiene tinta oscura sobre papel claro, otro tamaño y el dígito en cualquier sitio. El
# módulo `intro_cnn.data.digits` aplica la receta con la que se construyó MNIST: invierte la
# imagen si el fondo es claro, quita el fondo, recorta la tinta, la escala para que su lado
# mayor mida 20 píxeles y la coloca en un cuadro de 28 × 28 con su **centro de masa** en el
# centro.
#
# Para probarla, fabricamos una «foto» a partir de un dígito de prueba (tinta oscura, cuatro
# veces más grande y desplazado) y comprobamos que la receta lo devuelve a su forma MNIST.

# %%
from intro_cnn.data import digits
from intro_cnn.notebook import samples

original = procesado["x_test"][0]
foto = samples.as_photo(original)
preparada = digits.prepare(foto)
print(f"foto {foto.shape}; ¿invertida? {preparada.inverted}; tinta en {preparada.box}")
mostrar(figures.fig_recipe(foto, preparada.image, original, IDIOMA))

# %% [markdown]
# ## 5. Las tres redes convolucionales
#
# Las redes se construyen con las mismas funciones que usa la etapa `train`
# (`intro_cnn.models.build_model`, una por fichero en `intro_cnn/architectures/`). Todas
# reciben una imagen de 28 × 28 × 1 y terminan en una capa densa de 10 neuronas con
# *softmax*, que da una probabilidad por dígito.
#
# - **`cnn`**: dos convoluciones de 32 filtros 3 × 3, cada una seguida de un *max pooling*
#   que reduce el mapa a la mitad, y una capa densa de 64 neuronas.
# - **`cnn_small`**: la misma forma con solo 8 filtros por capa: muchos menos parámetros.
# - **`cnn_small_bn`**: `cnn_small` con **normalización por lotes** (*batch normalization*)
#   tras cada convolución y su activación ReLU.
#
# Una capa convolucional con `k` filtros de 3 × 3 sobre `c` canales tiene `(3·3·c + 1)·k`
# parámetros (pesos más un sesgo por filtro): con 32 filtros sobre la imagen de un canal,
# `(9 + 1)·32 = 320`. Los mismos pesos se reutilizan en todas las posiciones de la imagen;
# por eso una red convolucional necesita tan pocos. `model.summary()` lo desglosa capa a capa.
# Estas redes son nuevas, sin entrenar: solo nos interesa su forma.

# %%
from intro_cnn.runtime import tf_import

with tf_import.importing_tensorflow():
    import keras

from intro_cnn.models import build_model

print("Keras", keras.__version__)
for nombre in ("cnn", "cnn_small", "cnn_small_bn"):
    build_model(nombre).summary()

# %% [markdown]
# Como referencia, la red densa `mlp`: aplana la imagen en 784 números y los conecta todos con
# cada una de sus 512 neuronas, y estas con otras 512. Fíjate en el número de parámetros.

# %%
build_model("mlp").summary()

# %% [markdown]
# ## 6. Curvas de entrenamiento
#
# El pipeline guarda, para cada red, la precisión y la pérdida de cada época en
# `reports/train/<red>/history.csv`. Las leemos con el mismo lector que la etapa `visualize`
# (junto con la evaluación en prueba y los resultados de todas las semillas), y las dibujamos
# con su misma función: precisión en línea continua (eje izquierdo), pérdida a trazos (eje
# derecho); azul para entrenamiento y naranja para validación. Si la curva de validación se
# separa de la de entrenamiento, la red empieza a memorizar en lugar de generalizar.

# %%
from IPython.display import display

from intro_cnn.notebook import results
from intro_cnn.reporting import curve_figures

resultados = results.model_results(MODELOS)
for nombre, resultado in resultados.items():
    display(mostrar(curve_figures.fig_history(resultado.history, nombre, IDIOMA)))

# %% [markdown]
# Las diferencias entre redes están en las últimas décimas de punto: así se ven de cerca las
# curvas de `cnn`.

# %%
mostrar(curve_figures.fig_accuracy_zoom(resultados["cnn"].history, "cnn", IDIOMA))

# %% [markdown]
# ## 7. Lo que ha aprendido la red: filtros y mapas de características
#
# Abrimos la `cnn_small` entrenada (`models/cnn_small.keras`) y miramos sus pesos. La primera
# fila muestra sus 8 filtros de la primera capa, de 3 × 3 cada uno (rojo: peso positivo; azul:
# negativo). Muchos se parecen a los detectores de bordes del apartado 3, en distintas
# orientaciones: la red ha descubierto por su cuenta que los bordes sirven. Las filas
# siguientes son los filtros de la segunda capa, uno por cada canal de entrada.

# %%
from intro_cnn.reporting import filter_figures, visualize
from intro_cnn.reporting.network_figures import BN_PAIR, FILTER_MODEL

imagenes, etiquetas, _ = visualize.load_processed(PARAMS.report.n_feature_images)
detalle = visualize.conv_details(FILTER_MODEL, imagenes, etiquetas)
print(f"{FILTER_MODEL}: núcleos {[k.shape for k in detalle.kernels]}")
mostrar(filter_figures.fig_filters(detalle.kernels, FILTER_MODEL, IDIOMA))

# %% [markdown]
# Un **mapa de características** es la salida de un filtro sobre una imagen concreta: dónde
# ha encontrado su patrón (amarillo: respuesta fuerte). En la primera capa los mapas aún
# recuerdan al dígito; en la segunda, más pequeños tras el *pooling*, son más abstractos:
# combinan los patrones de la primera.

# %%
mostrar(
    filter_figures.fig_feature_maps(
        detalle.images, detalle.labels, detalle.maps1, detalle.maps2, FILTER_MODEL, IDIOMA
    )
)

# %% [markdown]
# ## 8. Normalización por lotes
#
# La normalización por lotes reescala, en cada lote, la salida de una capa para que tenga
# media 0 y varianza 1 (con una escala y un desplazamiento que también se aprenden). Suele
# hacer que el entrenamiento arranque más rápido y sea más estable. El cuaderno original
# afirma que mejora a `cnn_small`. Primero, las curvas de las dos redes:

# %%
sin_bn, con_bn = BN_PAIR
mostrar(
    curve_figures.fig_bn_comparison(
        resultados[sin_bn].history, resultados[con_bn].history, BN_PAIR, IDIOMA
    )
)

# %% [markdown]
# **Cuidado con sacar conclusiones de una sola ejecución.** Con otra semilla (otros pesos
# iniciales, otro orden de los lotes) la precisión de una misma red cambia unas décimas de
# punto, tanto como la diferencia que queremos medir. Por eso el pipeline entrena estas redes
# con varias semillas (sección `replicates` de `params.yaml`) y compara las medias con su
# intervalo de confianza del 95 %: si el intervalo de la diferencia contiene el 0, no se
# distingue del ruido de semilla.

# %%
from intro_cnn.reporting import evaluation_figures

dispersion = results.seed_spread()
for nombre in BN_PAIR:
    print(results.seeds_sentence(nombre, dispersion[nombre], IDIOMA))
mostrar(evaluation_figures.fig_accuracy_by_seed(results.seed_points(resultados), IDIOMA))

# %% [markdown]
# Y el veredicto del pipeline sobre la afirmación, con la diferencia emparejada semilla a
# semilla y su intervalo:

# %%
afirmaciones = {a.id: a for a in results.read_claims()}
print(results.claim_text(afirmaciones["batchnorm"], IDIOMA))

# %% [markdown]
# ## 9. Las afirmaciones del cuaderno, comprobadas
#
# La otra afirmación del cuaderno original: la red convolucional `cnn` logra mejor precisión
# que la red densa `mlp` con muchos menos parámetros. La figura sitúa cada red por su tamaño
# (escala logarítmica) y su precisión en prueba.

# %%
print(results.claim_text(afirmaciones["cnn_vs_mlp"], IDIOMA))
mostrar(evaluation_figures.fig_accuracy_vs_params(results.size_points(resultados), IDIOMA))

# %% [markdown]
# ## 10. (Opcional) Reentrenar `cnn_small` unas pocas épocas
#
# **Esta es la única celda que entrena**, y solo si `ENTRENAR = True` en la celda de
# parámetros. Entrena una `cnn_small` nueva durante `EPOCAS_NUEVAS` épocas con la misma
# receta que el pipeline (datos, semilla, tamaño de lote, optimizador), sin escribir nada: el
# modelo del pipeline, su historial y sus ejecuciones de MLflow no cambian. Después dibuja su
# curva junto a la del pipeline e imprime las dos precisiones en prueba.

# %%
# ⚠️ ENTRENAMIENTO OPCIONAL (solo con ENTRENAR = True) ⚠️
from intro_cnn.notebook import retrain

figura_nueva = None
if ENTRENAR:
    nueva = retrain.retrain(FILTER_MODEL, EPOCAS_NUEVAS, PARAMS)
    print(retrain.comparison(nueva, resultados[FILTER_MODEL], IDIOMA))
    historia = resultados[FILTER_MODEL].history
    figura_nueva = mostrar(figures.fig_retrained(historia, nueva.history, FILTER_MODEL, IDIOMA))
else:
    print(retrain.skipped(FILTER_MODEL, EPOCAS_NUEVAS, IDIOMA))
figura_nueva

# %% [markdown]
# ## Para seguir
#
# - Cambia un valor de `params.yaml` (por ejemplo, `models.cnn_small.epochs`) y ejecuta
#   `make repro`: el pipeline solo repite lo que depende de ese valor. Después vuelve a
#   ejecutar este cuaderno.
# - `dvc exp run -S models.cnn.epochs=5` prueba una variante sin tocar el fichero.
# - `make ui` abre MLflow con todas las ejecuciones registradas; `reports/index.html` es el
#   informe completo, con una pizarra para dibujar dígitos y ver cómo los clasifica `cnn`.
